-- SPDX-License-Identifier: MIT
--
-- A BigCommerce customer (v3, with include=addresses) becomes an SAP Sales
-- Cloud contact (ContactCollection). Only properties that $metadata marks
-- sap:creatable and sap:updatable are written; ExternalID is read-only on
-- contacts, so the link between the two records lives in ferry's link table
-- and, when that is lost, is found again by e-mail, never by a blind create.

local map = require "ferry.map"

-- Shoppers type their address with stray capitals and spaces; SAP's lookup
-- by e-mail is an exact comparison, so both sides use the same normal form.
local email = map.lower(map.trim "email")

-- The address to use as the contact's business address: the first
-- commercial one, else the first one.
local function business_address(record)
  local addrs = record.addresses
  if type(addrs) ~= "table" then
    return nil
  end
  for _, a in ipairs(addrs) do
    if type(a) == "table" and a.address_type == "commercial" then
      return a
    end
  end
  return addrs[1]
end

local function address(path)
  return function(record)
    local a = business_address(record)
    return a and map.get(a, path) or nil
  end
end

return {
  description = "BigCommerce customer -> SAP Sales Cloud contact",
  source = { "bigcommerce", "customer", on = { "created", "updated" } },
  target = { "sap_sales", "ContactCollection" },
  key    = "id",
  match  = { "link", map.lookup("Email", email) },
  fields = {
    FirstName = map.trim "first_name",            -- String(40)
    LastName  = map.trim "last_name",             -- String(40)
    Email     = email,                            -- String(255)
    Phone     = map.first("phone", address "phone"), -- String(40)
    BusinessAddressStreet           = address "address1",    -- String(60)
    BusinessAddressCity             = address "city",        -- String(40)
    BusinessAddressStreetPostalCode = address "postal_code", -- String(10)
    BusinessAddressCountryCode      = address "country_code",-- ISO 3166 alpha-2
  },
  -- Sales reps keep phone numbers current in SAP; the shop only seeds them.
  owner = { Phone = "sap_sales" },
}
