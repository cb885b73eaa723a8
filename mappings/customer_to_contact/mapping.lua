-- SPDX-License-Identifier: MIT
--
-- A BigCommerce customer (v3, with include=addresses) becomes an SAP Sales
-- Cloud contact (ContactCollection): the B2B model, where the person buys
-- for a company. Consumers (B2C) become individual customers instead
-- (customer_to_individual_customer); the setting `customer_model` decides
-- which customers this mapping takes ("b2b", the default, takes all).
--
-- Only properties that $metadata marks sap:creatable and sap:updatable are
-- written; ExternalID is read-only on contacts, so the link between the two
-- records lives in ferry's link table and, when that is lost, is found again
-- by e-mail, never by a blind create.
--
-- The contact's account (AccountID) is not set here: a v3 customer does not
-- say which company it belongs to. B2B Edition company users do, and
-- company_user_to_contact attaches the contact to the company's account.

local map = require "ferry.map"
local commerce = require "ferry.commerce"
local owner = require "ferry.owner"

-- Shoppers type their address with stray capitals and spaces; SAP's lookup
-- by e-mail is an exact comparison, so both sides use the same normal form.
local email = map.lower(map.trim "email")

-- The address to use as the contact's business address: the first
-- commercial one, else the first one.
local function find_business_address(record)
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

-- Six fields ask for it; the search runs once per record. Only the last
-- record is remembered, and a new record is a new table.
local last_record, last_address
local function business_address(record)
  if record ~= last_record then
    last_record, last_address = record, find_business_address(record)
  end
  return last_address
end

local function address(path)
  return function(record)
    local a = business_address(record)
    return a and map.get(a, path) or nil
  end
end

return {
  description = "BigCommerce customer -> SAP Sales Cloud contact (B2B)",
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
    -- Settings `owner` (lua/ferry/owner.lua): territory by the business
    -- address, a team, a fallback. Nothing configured: SAP decides.
    -- Reps reassign contacts, so the owner must be set on create only. The
    -- `owner` table below is the way to say that, but its content is
    -- pinned by tests/unit/test_mapping.c; until that test lists
    -- ContactOwnerID too, the owner is sent with `created` events only (a
    -- new registration), so later updates never overwrite a reassignment.
    ContactOwnerID = function(record, ctx)                -- String(20)
      if ctx.event ~= "created" then
        return nil
      end
      return (owner.pick(ctx, "ContactCollection", function()
        local country, region = commerce.place(business_address(record))
        return { id = record.id, country = country, region = region }
      end))
    end,
  },
  -- Sales reps keep phone numbers current in SAP; the shop only seeds them.
  owner = { Phone = "sap_sales" },
  filter = function(record, ctx)
    return commerce.customer_kind(record, ctx, "b2b") == "b2b"
  end,
}
