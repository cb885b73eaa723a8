-- SPDX-License-Identifier: MIT
-- ferry init: off (writes to the shop; enable it for two-way sync)
--
-- The way back of two-way sync: an SAP Sales Cloud contact (ContactCollection,
-- read by the delta poll on EntityLastChangedOn) updates the BigCommerce
-- customer it belongs to, with the fields the CRM owns. customer_to_contact
-- sends the shop's fields the other way and declares Phone as the CRM's
-- (owner = { Phone = "sap_sales" }), so each field has exactly one system of
-- record and is written in one direction only:
--
--   shop owns   first_name, last_name, email, address  -> SAP (customer_to_contact)
--   CRM owns    phone                                  -> shop (this mapping)
--
-- The customer is found through the link customer_to_contact made (read the
-- other way round), else by e-mail. A contact made in the CRM for someone
-- without a shop account changes nothing: op = "update" never creates a
-- customer (a shop login is not the CRM's to invent).
--
-- When ferry's own write to a contact comes back through the poll, the
-- echo ledger recognises the values ferry wrote there and they are not sent
-- back (docs/mappings.md, "Two-way sync").

local map = require "ferry.map"

return {
  description = "SAP Sales Cloud contact -> BigCommerce customer (fields the CRM owns)",
  source = { "sap_sales", "ContactCollection", on = { "created", "updated" } },
  target = { "bigcommerce", "customer" },
  key    = "ObjectID",
  op     = "update",
  match  = { "link", map.lookup("email", map.lower(map.trim "Email")) },
  fields = {
    -- BigCommerce keeps one phone number per customer; reps who only have
    -- a mobile number keep that one.
    phone = map.first("Phone", "Mobile"),
  },
  -- The CRM owns the phone: a rep's correction wins over an edit in the
  -- shop's account page made since the last sync (the setting `conflict`
  -- can choose "newer" or "park" per deployment).
  conflict = { policy = "source", source_time = "EntityLastChangedOn",
               target_time = "date_modified" },
}
