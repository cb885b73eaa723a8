-- SPDX-License-Identifier: MIT
-- ferry init: off (for stores that make leads with registration_to_lead)
--
-- A lead registration_to_lead made for a shop customer is qualified and
-- converted by sales in SAP Sales Cloud; the converted lead names its
-- contact (ContactID). This mapping links the shop customer the lead came
-- from to that contact, so that customer_to_contact's next run for the
-- customer updates the contact sales work with, instead of looking one up
-- by e-mail (a converted contact may carry another address) or creating a
-- second one. Nothing is written to either system (op = "link"); a customer
-- already linked to a contact keeps its link, and the audit names both.
--
-- The lead is read by the delta poll of LeadCollection (EntityLastChangedOn).

local map = require "ferry.map"

return {
  description = "SAP Sales Cloud converted lead -> link its shop customer to the lead's contact",
  source    = { "sap_sales", "LeadCollection", on = { "created", "updated" } },
  target    = { "sap_sales", "ContactCollection" },
  key       = "ObjectID",
  op        = "link",
  link_from = { "bigcommerce", "customer" },
  match     = { map.lookup("ContactID", map.trim "ContactID") },
  fields    = {},
  filter = function(lead)
    return map.get(lead, "ContactID") ~= nil
  end,
}
