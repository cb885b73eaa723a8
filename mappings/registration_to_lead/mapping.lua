-- SPDX-License-Identifier: MIT
-- ferry init: off (needs settings or overlaps another mapping; see below)
--
-- A registration in the store becomes a lead in SAP Sales Cloud
-- (LeadCollection): someone who signed up but has not bought yet. Enabled by
-- configuration (add it to mappings.enabled); setting `customer_groups`
-- limits it to some customer groups (default: all).
--
-- A lead is made at registration, when there is no order yet. When the
-- person orders, order_to_activities can set the lead's UserStatusCode
-- (setting lead_status_on_order there); converting the lead into the
-- contact is SAP's own action (LeadConvert... function imports) and a lead
-- converted in SAP is not read back: two-way sync is core work to come.
-- Registering during checkout (an order follows at once) still makes a
-- lead: waiting N hours for an order needs scheduled re-checks in the core.
--
-- Lead ID and ExternalID are read-only: the link lives in ferry's link
-- table and a lost link is found again by the contact e-mail.

local map = require "ferry.map"
local commerce = require "ferry.commerce"
local owner = require "ferry.owner"

local email = map.lower(map.trim "email")

local function first_address(record)
  return type(record.addresses) == "table" and record.addresses[1] or nil
end

return {
  description = "BigCommerce registration -> SAP Sales Cloud lead",
  source = { "bigcommerce", "customer", on = { "created" } },
  target = { "sap_sales", "LeadCollection" },
  key    = "id",
  match  = { "link", map.lookup("ContactEMail", email) },
  fields = {
    Name = function(record, ctx)                                       -- String(255), mandatory
      local who = commerce.name(map.get(record, "first_name"), map.get(record, "last_name"))
      local company = commerce.text(map.get(record, "company"))
      local s = commerce.setting(ctx, "name_prefix", "Web registration: ") .. (who or "?")
      if company then
        s = s .. ", " .. company
      end
      return commerce.cut(s, 255)
    end,
    ContactFirstName = map.trim "first_name",                          -- String(40)
    ContactLastName  = map.trim "last_name",                           -- String(40)
    ContactEMail     = email,                                          -- String(255)
    ContactPhone     = map.trim "phone",                               -- String(40)
    Company          = map.trim "company",                             -- String(40)
    AccountCity      = function(record)                                -- String(40)
      local a = first_address(record)
      return a and commerce.text(map.get(a, "city")) or nil
    end,
    AccountCountry   = function(record)                                -- String(3)
      local a = first_address(record)
      return a and commerce.text(map.get(a, "country_code")) or nil
    end,
    OriginTypeCode   = map.setting("origin_type_code", nil),           -- String(3)
    QualificationLevelCode = map.setting("qualification_level_code", nil), -- String(2)
    GroupCode        = map.setting("group_code", nil),                 -- String(4)
    OwnerPartyID     = owner.field("LeadCollection", function(record)  -- String(60)
      local country, region = commerce.place(first_address(record))
      return { id = record.id, country = country, region = region }
    end),
  },
  -- The sales team qualifies and reassigns leads in SAP.
  owner = { OwnerPartyID = "sap_sales", QualificationLevelCode = "sap_sales" },
  validate = {
    Name             = { required = true },
    ContactFirstName = { max_length = 40 },
    ContactLastName  = { max_length = 40 },
    Company          = { max_length = 40 },
    AccountCountry   = { format = "country" },
  },
  filter = function(record, ctx)
    local groups = commerce.setting(ctx, "customer_groups", nil)
    if type(groups) ~= "table" then
      return true
    end
    for _, g in ipairs(groups) do
      if commerce.id(g) == commerce.id(map.get(record, "customer_group_id") or 0) then
        return true
      end
    end
    return false
  end,
}
