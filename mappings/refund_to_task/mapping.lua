-- SPDX-License-Identifier: MIT
--
-- A refund in the store becomes a task in SAP Sales Cloud (TasksCollection)
-- with the amount and the reason, so that the account's owner can find out
-- what went wrong. One task per refund (the task is linked to the refund).
--
-- Only `refund_created` (the webhook) counts, not refunds read by a poll or
-- a backfill (years of old refunds are not news).
--
-- BigCommerce also sends statusUpdated (4 Refunded / 14 Partially Refunded)
-- for the same refund. Both events belong to the order's group, so they are
-- held for the coalescing window (webhooks.coalesce_window) and each sees
-- the other in ctx.group_events: the refund's task says what the order's
-- status became, and order_to_activities leaves that status change to the
-- refund (statuses_covered_by_refund): one refund, one task.
--
-- The refund record has no currency: setting `currency` names the store's
-- (else the amount stands alone). The account (MainAccountPartyID) is the
-- buyer of the order's sales order, a reference resolved when the task is
-- written; without a synced sales order the task is made without it.

local map = require "ferry.map"
local commerce = require "ferry.commerce"
local owner = require "ferry.owner"

-- The connector's id of a refund is "<order id>:<refund id>".
local function refund_key(r)
  local o, id = commerce.id(map.get(r, "order_id")), commerce.id(map.get(r, "id"))
  if o == nil or id == nil then
    return nil
  end
  return o .. ":" .. id
end

-- The sales order order_to_sales_order wrote for the refund's order (its
-- rule key "sales-order" is part of the link's id).
local function sales_order(r, property, default)
  return { object = "order", id = commerce.id(map.get(r, "order_id")) .. "#sales-order",
           target = "CustomerOrderCollection", property = property, default = default }
end

local KINDS = { PRODUCT = "order line", SHIPPING = "shipping", HANDLING = "handling",
                GIFT_WRAPPING = "gift wrapping", ORDER = "order amount", FEE = "fee" }

local REFUND_STATUSES = { ["4"] = "Refunded", ["14"] = "Partially Refunded" }

-- The status the order moved to in the same business event, if it came
-- with the refund (BigCommerce's label for 4 and 14; else the id).
local function new_status(ctx)
  for _, e in ipairs(type(ctx.group_events) == "table" and ctx.group_events or {}) do
    if e.object == "order" and e.event == "status_changed" and type(e.event_data) == "table" then
      local id = commerce.id(e.event_data.new_status_id)
      if id then
        return REFUND_STATUSES[id] or ("status " .. id)
      end
    end
  end
  return nil
end

local function items_text(r)
  local parts = {}
  if type(r.items) == "table" then
    for _, it in ipairs(r.items) do
      local kind = map.get(it, "item_type")
      local s = KINDS[kind] or tostring(kind or "item")
      if kind == "PRODUCT" then
        s = (commerce.quantity(map.get(it, "quantity")) or "1") .. " x " .. s .. " "
            .. (commerce.id(map.get(it, "item_id")) or "?")
      end
      local why = commerce.text(map.get(it, "reason"))
      if why then
        s = s .. " (" .. why .. ")"
      end
      parts[#parts + 1] = s
    end
  end
  return table.concat(parts, ", ")
end

return {
  description = "BigCommerce refund -> SAP Sales Cloud task with amount and reason",
  source = { "bigcommerce", "refund", on = { "refund_created" } },
  target = { "sap_sales", "TasksCollection" },
  key    = refund_key,
  match  = { "link" },
  fields = {
    Subject = function(r, ctx)                                         -- String(765)
      local amount = commerce.money(map.get(r, "total_amount"), commerce.setting(ctx, "currency", nil))
      local status = new_status(ctx)
      local s = commerce.setting(ctx, "subject", "Refund") .. " of " .. (amount or "?")
                .. " on order " .. (commerce.id(map.get(r, "order_id")) or "?")
                .. (status and (" (now " .. status .. ")") or "") .. ": "
                .. (commerce.text(map.get(r, "reason")) or "no reason given")
      local items = items_text(r)
      if items ~= "" then
        s = s .. "; " .. items
      end
      return commerce.cut(s, 765)
    end,
    DueDateTime = function(r, ctx)
      return commerce.after(map.get(r, "created"), commerce.number_setting(ctx, "due_hours", 24))
    end,
    MainAccountPartyID = function(r, ctx)                              -- String(60)
      return commerce.ref(ctx, sales_order(r, "BuyerPartyID", ferry.null))
    end,
    MainEmployeeResponsiblePartyID = function(r, ctx)                  -- String(60)
      return (owner.pick(ctx, "TasksCollection", {
        id = refund_key(r),
        inherit = sales_order(r, "EmployeeResponsiblePartyID"),
      }))
    end,
    PriorityCode = map.setting("priority_code", nil),                  -- String(1)
  },
  owner = { MainEmployeeResponsiblePartyID = "sap_sales" },
}
