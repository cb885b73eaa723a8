-- SPDX-License-Identifier: MIT
--
-- Options of the customer_to_contact mapping, for documentation and for the
-- config checker. The mapping reads connector instance names literally for
-- now; these are the names the shipped config gives its instances. The
-- settings (mappings.settings.customer_to_contact) are read with map.setting.
return {
  source_instance = { type = "string", default = "bigcommerce",
                      desc = "connector instance the customers come from" },
  target_instance = { type = "string", default = "sap_sales",
                      desc = "connector instance that receives the contacts" },
  events          = { type = "list", default = { "created", "updated" },
                      desc = "customer events that trigger the mapping" },
  customer_model  = { type = "string", default = "b2b",
                      desc = "b2b: every customer; b2c: none (customer_to_individual_customer "
                          .. "takes them); by_group: all but those in b2c_customer_groups" },
  b2c_customer_groups = { type = "list", default = {},
                          desc = "customer_group_id values that are consumers (with by_group)" },
  owner           = { type = "table", default = nil,
                      desc = "owner rules for ContactOwnerID (lua/ferry/owner.lua), applied to new registrations "
                          .. "(created events); nothing: SAP decides" },
}
