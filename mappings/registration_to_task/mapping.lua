-- SPDX-License-Identifier: MIT
--
-- A new registration in the store is a sales opportunity: the person gets a
-- follow-up task in SAP Sales Cloud (TasksCollection) for their owner, once
-- per customer however often the webhook arrives (the task is linked to the
-- customer like any record ferry writes; a second delivery finds the link
-- and writes nothing).
--
-- A registration is the `created` event, or a customer that a poll finds
-- (its webhook was lost) whose date_created is at most `new_within_hours`
-- (24) before the job was queued (ctx.received_at): a backfill's years-old
-- accounts are not new, or `ferry sync --since` would bury sales in tasks.
-- A later `updated` of a customer that already has its task finds the task
-- by its link and writes nothing.
--
-- The task is about the person: MainContactPartyID (B2B) or
-- MainAccountPartyID (B2C) and the owner inherited from the contact are
-- references (commerce.ref), resolved when the task is written, after the
-- job's earlier intents: with customer_to_contact (or
-- customer_to_individual_customer) listed before this mapping, the person
-- made from the same webhook is found. Neither holds the task back: without
-- the person the field is left out (the subject names them) and the owner
-- comes from the other owner rules (territory, team, fallback).

local map = require "ferry.map"
local commerce = require "ferry.commerce"
local owner = require "ferry.owner"

local function person(record, ctx)
  if commerce.customer_kind(record, ctx, "b2b") == "b2c" then
    return "IndividualCustomerCollection", "CustomerID", "OwnerID"
  end
  return "ContactCollection", "ContactID", "ContactOwnerID"
end

local function party(record, ctx)
  local set, id_prop = person(record, ctx)
  return commerce.ref(ctx, { object = "customer", id = record.id, target = set, property = id_prop,
                             default = ferry.null })
end

return {
  description = "BigCommerce registration -> SAP Sales Cloud follow-up task for the owner",
  source = { "bigcommerce", "customer", on = { "created", "updated" } },
  target = { "sap_sales", "TasksCollection" },
  key    = "id",
  match  = { "link" },
  fields = {
    Subject = function(record, ctx)                                    -- String(765)
      local who = commerce.name(map.get(record, "first_name"), map.get(record, "last_name"))
      local parts = { commerce.setting(ctx, "subject", "Follow up on a new registration") .. ": "
                      .. (who or "?") }
      local email = commerce.email(map.get(record, "email"))
      if email then
        parts[#parts + 1] = " <" .. email .. ">"
      end
      local company = commerce.text(map.get(record, "company"))
      if company then
        parts[#parts + 1] = ", " .. company
      end
      local phone = commerce.text(map.get(record, "phone"))
      if phone then
        parts[#parts + 1] = ", phone " .. phone
      end
      return commerce.cut(table.concat(parts), 765)
    end,
    -- Due a configurable time after the registration, from the record's own
    -- timestamp (mappings have no clock).
    DueDateTime = function(record, ctx)
      return commerce.after(map.get(record, "date_created"), commerce.number_setting(ctx, "due_hours", 48))
    end,
    MainContactPartyID = function(record, ctx)                         -- String(60)
      return select(1, person(record, ctx)) == "ContactCollection" and party(record, ctx) or nil
    end,
    MainAccountPartyID = function(record, ctx)                         -- String(60)
      return select(1, person(record, ctx)) == "IndividualCustomerCollection" and party(record, ctx)
             or nil
    end,
    MainEmployeeResponsiblePartyID = function(record, ctx)             -- String(60)
      return (owner.pick(ctx, "TasksCollection", function()
        local set, _, owner_prop = person(record, ctx)
        local addr = type(record.addresses) == "table" and record.addresses[1] or nil
        local country, region = commerce.place(addr)
        return { id = record.id, country = country, region = region,
                 inherit = { object = "customer", id = record.id, target = set, property = owner_prop } }
      end))
    end,
    PriorityCode = map.setting("priority_code", nil),                  -- String(1)
  },
  -- A rep who takes the task over keeps it.
  owner = { MainEmployeeResponsiblePartyID = "sap_sales" },
  -- Settings customer_groups: only these customer_group_id values (default: all).
  filter = function(record, ctx)
    if ctx.event ~= "created" then
      local created = commerce.time(map.get(record, "date_created"))
      local seen = commerce.time(ctx.received_at)
      local hours = commerce.number_setting(ctx, "new_within_hours", 24)
      if created == nil or seen == nil or seen - created > hours * 3600 then
        return false
      end
    end
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
