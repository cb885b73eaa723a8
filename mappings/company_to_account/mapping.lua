-- SPDX-License-Identifier: MIT
-- ferry init: off (needs settings or overlaps another mapping; see below)
--
-- A BigCommerce B2B Edition company becomes an SAP Sales Cloud corporate
-- account (CorporateAccountCollection). The company's legal address is the
-- account's main address; further company addresses are their own flow
-- (company_address_to_account_address), its users become contacts of the
-- account (company_user_to_contact).
--
-- ExternalID is read-only on accounts: the link lives in ferry's link table,
-- and a lost link is found again by the company e-mail. Writing the SAP
-- account id back into the company's `uuid` (the B2B field meant for an
-- external id) needs writes to BigCommerce, which the core does not do yet.

local map = require "ferry.map"
local commerce = require "ferry.commerce"
local owner = require "ferry.owner"

local email = map.lower(map.trim "companyEmail")
local company_id = map.first("companyId", "id")

-- SAP keeps a name in 40-character parts (Name, AdditionalName); B2B allows
-- 200. Split at the last blank within 40 so that "Name 2" continues the
-- name; whatever is still too long fails validation rather than being cut.
local function name_parts(record)
  local n = commerce.text(map.get(record, "companyName"))
  if n == nil or utf8.len(n) == nil or utf8.len(n) <= 40 then
    return n, nil
  end
  local cut = utf8.offset(n, 41) - 1
  local head = n:sub(1, cut)
  local space = head:match("^.*() ")
  if space and space > 1 then
    return commerce.text(n:sub(1, space - 1)), commerce.text(n:sub(space + 1))
  end
  return head, commerce.text(n:sub(cut + 1))
end

-- B2B sends the country as a name or an ISO code (facts 9.3); only the code
-- fits CountryCode.
local function country(record)
  local c = commerce.text(map.get(record, "country"))
  if c and c:match("^%a%a$") then
    return c:upper()
  end
  return nil
end

return {
  description = "BigCommerce B2B company -> SAP Sales Cloud corporate account",
  source = { "bigcommerce", "company", on = { "created", "updated", "status_changed" } },
  target = { "sap_sales", "CorporateAccountCollection" },
  key    = map.first("companyId", "id"),
  match  = { "link", map.lookup("Email", email) },
  fields = {
    Name           = function(r) return (name_parts(r)) end,            -- String(40), mandatory
    AdditionalName = function(r) return select(2, name_parts(r)) end,   -- String(40)
    Email          = email,                                             -- String(255)
    Phone          = map.trim "companyPhone",                           -- String(40)
    Street         = map.trim "addressLine1",                           -- String(60)
    AddressLine4   = map.trim "addressLine2",                           -- String(40), below the street
    City           = map.trim "city",                                   -- String(40)
    StreetPostalCode = map.trim "zipCode",                              -- String(10)
    CountryCode    = country,                                           -- String(3)
    -- Mandatory on create; CRM000 = customer. Set once, then SAP's.
    RoleCode       = map.setting("role_code", "CRM000"),
    -- companyStatus "0" pending, "1" approved, "2" rejected, "3" inactive
    -- -> 1 In Preparation, 2 Active, 3 Obsolete (settings status_codes).
    LifeCycleStatusCode = function(record, ctx)
      local table_ = commerce.setting(ctx, "status_codes",
                                      { ["0"] = "1", ["1"] = "2", ["2"] = "3", ["3"] = "3" })
      local s = map.get(record, "companyStatus")
      return s ~= nil and table_[commerce.id(s)] or nil
    end,
    OwnerID = owner.field("CorporateAccountCollection", function(record)
      return { id = company_id(record), country = country(record),
               region = commerce.text(map.get(record, "state")) }
    end),                                                               -- String(20)
  },
  owner = { RoleCode = "sap_sales", OwnerID = "sap_sales" },
  validate = {
    Name           = { required = true, max_length = 40 },
    AdditionalName = { max_length = 40 },
    AddressLine4   = { max_length = 40 },
    City           = { max_length = 40 },
    StreetPostalCode = { max_length = 10 },
    CountryCode    = { format = "country" },
  },
}
