-- SPDX-License-Identifier: MIT
-- ferry init: off (needs settings or overlaps another mapping; see below)
--
-- A BigCommerce B2B Edition company user is a contact person of the
-- company's SAP account. Every company user is also a BigCommerce customer
-- (creating the user creates the customer, facts 9.5), and
-- customer_to_contact already makes that customer a contact. So this mapping
-- never creates: it finds the same contact (link, else e-mail) and adds what
-- only the B2B record knows, above all the account (AccountID).
--
-- Never creating also means two mappings cannot race to create the same
-- person from two webhooks (customer and company user arrive together).
-- The cost: a user whose contact does not exist yet is skipped until its
-- next change; a dependency between mappings would close that gap.
--
-- AccountID is the linked company's SAP account ID, a reference
-- (commerce.ref) resolved when the contact is written. It has no default:
-- the account is what this mapping is for, and company and user webhooks
-- arrive together, so a user whose company is not synced yet waits for it
-- ("waiting for it to sync", retried with backoff) rather than being
-- written without its account. Enable company_to_account with this
-- mapping, or the user ends in the dead-letter queue saying so.

local map = require "ferry.map"
local commerce = require "ferry.commerce"

local email = map.lower(map.trim "email")

return {
  description = "BigCommerce B2B company user -> SAP Sales Cloud contact of the company's account",
  source = { "bigcommerce", "company_user", on = { "created", "updated" } },
  target = { "sap_sales", "ContactCollection" },
  op     = "update",
  key    = "id",
  match  = { "link", map.lookup("Email", email) },
  fields = {
    FirstName = map.trim "firstName",          -- String(40)
    LastName  = map.trim "lastName",           -- String(40)
    Email     = email,                         -- String(255)
    Phone     = map.trim "phoneNumber",        -- String(40)
    AccountID = function(record, ctx)          -- String(10)
      return commerce.ref(ctx, { object = "company", id = map.get(record, "companyId"),
                                 target = "CorporateAccountCollection", property = "AccountID" })
    end,
  },
  owner = { Phone = "sap_sales" },
  validate = {
    FirstName = { max_length = 40 },
    LastName  = { max_length = 40 },
  },
}
