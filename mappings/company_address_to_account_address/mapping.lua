-- SPDX-License-Identifier: MIT
-- ferry init: off (needs settings or overlaps another mapping; see below)
--
-- A BigCommerce B2B Edition company address becomes an address of the
-- company's SAP account (CorporateAccountAddressCollection). The set is
-- writable and so is its parent key, ParentObjectID (on create only): an
-- address is created under its account and later changed in place.
--
-- ParentObjectID is the ObjectID of the account linked to the address's
-- company, a reference (commerce.ref) resolved when the address is written.
-- It has no default: an address without its account would be an orphan in
-- the CRM, so an address whose company is not synced yet waits for it
-- ("waiting for it to sync", retried with backoff). Enable
-- company_to_account with this mapping. Without references (a fixture
-- without context.features.refs) the field is missing and validation says
-- "ParentObjectID is required".

local map = require "ferry.map"
local commerce = require "ferry.commerce"

local function country(record)
  local c = commerce.text(map.get(record, "countryCode"))
  return c and c:upper() or nil
end

local function flag(path)
  return function(record)
    local v = map.get(record, path)
    if type(v) == "boolean" then
      return v
    end
    return nil
  end
end

return {
  description = "BigCommerce B2B company address -> SAP Sales Cloud account address",
  source = { "bigcommerce", "company_address", on = { "created", "updated" } },
  target = { "sap_sales", "CorporateAccountAddressCollection" },
  key    = map.first("addressId", "id"),
  -- No natural key on addresses: the link only.
  match  = { "link" },
  fields = {
    ParentObjectID = function(record, ctx)                 -- String(70), create only
      return commerce.ref(ctx, { object = "company", id = map.get(record, "companyId"),
                                 target = "CorporateAccountCollection", property = "ObjectID" })
    end,
    Street           = map.trim "addressLine1",            -- String(60)
    AddressLine4     = map.trim "addressLine2",            -- String(40), the line below the street
    City             = map.trim "city",                    -- String(40)
    StreetPostalCode = map.trim "zipCode",                 -- String(10)
    CountryCode      = country,                            -- String(3)
    Phone            = map.trim "phoneNumber",             -- String(40)
    ShipTo           = flag "isShipping",
    BillTo           = flag "isBilling",
    DefaultShipTo    = flag "isDefaultShipping",
    DefaultBillTo    = flag "isDefaultBilling",
  },
  validate = {
    ParentObjectID   = { required = true },
    AddressLine4     = { max_length = 40 },
    City             = { max_length = 40 },
    StreetPostalCode = { max_length = 10 },
    CountryCode      = { format = "country" },
  },
}
