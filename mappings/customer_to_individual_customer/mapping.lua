-- SPDX-License-Identifier: MIT
-- ferry init: off (needs settings or overlaps another mapping; see below)
--
-- A BigCommerce customer who buys for themselves (B2C) becomes an SAP Sales
-- Cloud individual customer (IndividualCustomerCollection). The counterpart
-- of customer_to_contact (B2B): enable this one for a consumer store, that
-- one for a business store, or both with customer_model = "by_group" and the
-- same b2c_customer_groups in each (settings are per mapping).
--
-- Like contacts, individual customers have a read-only ExternalID: the link
-- lives in ferry's link table and a lost link is found again by e-mail.

local map = require "ferry.map"
local commerce = require "ferry.commerce"
local owner = require "ferry.owner"

local email = map.lower(map.trim "email")

-- A consumer's address: the first residential one, else the first one.
local function home_address(record)
  local addrs = record.addresses
  if type(addrs) ~= "table" then
    return nil
  end
  for _, a in ipairs(addrs) do
    if type(a) == "table" and a.address_type == "residential" then
      return a
    end
  end
  return addrs[1]
end

local function address(path)
  return function(record)
    local a = home_address(record)
    return a and map.get(a, path) or nil
  end
end

return {
  description = "BigCommerce customer -> SAP Sales Cloud individual customer (B2C)",
  source = { "bigcommerce", "customer", on = { "created", "updated" } },
  target = { "sap_sales", "IndividualCustomerCollection" },
  key    = "id",
  match  = { "link", map.lookup("Email", email) },
  fields = {
    FirstName = map.trim "first_name",                 -- String(40)
    LastName  = map.trim "last_name",                  -- String(40), mandatory
    Email     = email,                                 -- String(255)
    Phone     = map.first("phone", address "phone"),   -- String(40)
    Street           = address "address1",             -- String(60)
    City             = address "city",                 -- String(40)
    StreetPostalCode = address "postal_code",          -- String(10)
    CountryCode      = address "country_code",         -- ISO 3166 alpha-2
    -- Mandatory on create. CRM000 is SAP's customer role; a tenant may use
    -- a prospect role for buyers without orders (setting role_code).
    RoleCode  = map.setting("role_code", "CRM000"),    -- String(6)
    OwnerID   = owner.field("IndividualCustomerCollection", function(record)
      local country, region = commerce.place(home_address(record))
      return { id = record.id, country = country, region = region }
    end),                                              -- String(20)
  },
  -- Set on create; afterwards the CRM's users maintain them.
  owner = { Phone = "sap_sales", RoleCode = "sap_sales", OwnerID = "sap_sales" },
  validate = {
    LastName  = { required = true, max_length = 40 },
    FirstName = { max_length = 40 },
    CountryCode = { format = "country" },
  },
  filter = function(record, ctx)
    return commerce.customer_kind(record, ctx, "b2c") == "b2c"
  end,
}
