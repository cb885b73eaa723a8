-- SPDX-License-Identifier: MIT
--
-- Settings of customer_to_individual_customer (mappings.settings.<flow>,
-- read with map.setting; documentation for integrators and the checker).
return {
  customer_model      = { type = "string", default = "b2c",
                          desc = "b2c: every customer; b2b: none; by_group: those in b2c_customer_groups" },
  b2c_customer_groups = { type = "list", default = {},
                          desc = "customer_group_id values that are consumers (with by_group)" },
  role_code           = { type = "string", default = "CRM000",
                          desc = "RoleCode of new individual customers (mandatory in SAP)" },
  owner               = { type = "table", default = nil,
                          desc = "owner rules (lua/ferry/owner.lua); nothing: SAP decides" },
}
