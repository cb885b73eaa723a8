-- SPDX-License-Identifier: MIT
--
-- Settings of company_to_account (mappings.settings.company_to_account).
return {
  role_code    = { type = "string", default = "CRM000",
                   desc = "RoleCode of new accounts (mandatory in SAP; CRM000 = customer)" },
  status_codes = { type = "table",
                   default = { ["0"] = "1", ["1"] = "2", ["2"] = "3", ["3"] = "3" },
                   desc = "companyStatus -> LifeCycleStatusCode (verify the codes on your tenant)" },
  owner        = { type = "table", default = nil,
                   desc = "owner rules for OwnerID (lua/ferry/owner.lua)" },
}
