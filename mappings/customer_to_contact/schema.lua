-- SPDX-License-Identifier: MIT
--
-- Options of the customer_to_contact mapping, for documentation and for the
-- config checker. The mapping reads connector instance names literally for
-- now; these are the names the shipped config gives its instances.
return {
  source_instance = { type = "string", default = "bigcommerce",
                      desc = "connector instance the customers come from" },
  target_instance = { type = "string", default = "sap_sales",
                      desc = "connector instance that receives the contacts" },
  events          = { type = "list", default = { "created", "updated" },
                      desc = "customer events that trigger the mapping" },
}
