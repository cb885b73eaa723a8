-- SPDX-License-Identifier: MIT
--
-- What an order means for sales, as activities in SAP Sales Cloud. Each rule
-- is a small function; every activity is created once per order and rule key
-- (a redelivered webhook or a retried job finds the activity it made).
--
--   placed    a first order: a welcome phone call (PhoneCallCollection, found
--             again by GroupwareItemID); a repeat order at or above
--             `repeat_order_task_above`: a thank-you task. Settings
--             first_order_call_above (0), repeat_order_task_above (1000).
--   status    a status change listed in `status_tasks` (by status_id:
--             2 shipped, 5 cancelled, 6 declined by default) makes a task,
--             except a status in `statuses_covered_by_refund` (4, 14) that
--             came with a refund (ctx.group_events): the refund's task
--             (refund_to_task) covers that business event.
--   qualify_lead  with `lead_status_on_order` set, the buyer's lead from
--             registration_to_lead (found by e-mail) gets that UserStatusCode:
--             the registration is no longer one "without an order".
--   close_cart_task  the task abandoned_cart_to_task made for the cart this
--             order was placed from (the order's cart_id) is set to
--             `cart_task_done_status` ("3", completed) when ferry made it
--             less than `close_cart_task_within_hours` (24) ago: the buyer
--             came back, nobody needs to call. 0 turns it off.
--
-- Only live events count (`created`, `converted`, `status_changed`): a poll
-- or backfill reads orders as `updated`, and years of old orders must not
-- become calls.
--
-- First or repeat order: BigCommerce's order record does not say how many
-- orders the buyer placed before; the connector adds `buyer_orders_before`
-- when it reads an order (one orders/count request). Guests, and orders read
-- from a poll page, have no count: such a buyer counts as `unknown_history`
-- ("repeat" by default, so nobody gets a welcome call by mistake).
--
-- The contact on the activities and the owner inherited from the buyer are
-- references (commerce.ref) resolved when the activity is written; a buyer
-- without a synced contact (a guest) gets the activity without them.

local map = require "ferry.map"
local commerce = require "ferry.commerce"
local owner = require "ferry.owner"

local DEFAULT_STATUS_TASKS = {
  ["2"] = { subject = "Order {id} shipped: check that it arrived and ask for a review", hours = 72 },
  ["5"] = { subject = "Order {id} ({total}) was cancelled: ask {buyer} why", hours = 24 },
  ["6"] = { subject = "Payment declined for order {id} ({total}): help {buyer} complete it", hours = 4 },
}

local function guest(order)
  return commerce.id(map.get(order, "customer_id") or 0) == "0"
end

local function buyer_email(order)
  return commerce.email(map.get(order, "billing_address.email"))
end

local function buyer_name(order)
  return commerce.name(map.get(order, "billing_address.first_name"),
                       map.get(order, "billing_address.last_name")) or buyer_email(order) or "the buyer"
end

-- When the order last changed: its status change, else its placing.
local order_time = map.first("date_modified", "date_created")

local function total(order)
  return commerce.money(map.get(order, "total_inc_tax"), commerce.currency(order))
end

-- The buyer's contact (registered: by the customer link; guest: by e-mail).
local function contact(order, property, default)
  if guest(order) then
    return { lookup = { target = "ContactCollection", field = "Email", value = buyer_email(order) },
             property = property, default = default }
  end
  return { object = "customer", id = map.get(order, "customer_id"), target = "ContactCollection",
           property = property, default = default }
end

local function responsible(order, ctx, set)
  return (owner.pick(ctx, set, function()
    local country, region = commerce.place(order.billing_address)
    return { id = map.get(order, "id"), country = country, region = region,
             inherit = contact(order, "ContactOwnerID") }
  end))
end

local function fill(template, order)
  local values = { id = commerce.id(map.get(order, "id")) or "?", total = total(order) or "?",
                   buyer = buyer_name(order) }
  return (template:gsub("{(%a+)}", function(k)
    return values[k] or ("{" .. k .. "}")
  end))
end

local function live(ctx, ...)
  for _, e in ipairs({ ... }) do
    if ctx.event == e then
      return true
    end
  end
  return false
end

local function first_order(order, ctx)
  -- The connector counts the buyer's earlier orders when it reads an order
  -- (bigcommerce buyer_history); a fixture or another source may put the
  -- count in ctx instead.
  local n = map.get(order, "buyer_orders_before")
  if type(n) ~= "number" then
    n = ctx.buyer_orders_before
  end
  if type(n) == "number" then
    return n == 0
  end
  return commerce.setting(ctx, "unknown_history", "repeat") == "first"
end

return commerce.rules_only {
  description = "BigCommerce order events -> SAP Sales Cloud calls and tasks",
  source = { "bigcommerce", "order", on = { "created", "converted", "status_changed" } },
  target = { "sap_sales", "TasksCollection" },
  rules = {
    placed = function(order, ctx)
      if not live(ctx, "created", "converted") then
        return nil
      end
      local id = commerce.id(map.get(order, "id"))
      local value = commerce.number(map.get(order, "total_inc_tax")) or 0
      local created = map.get(order, "date_created")
      if first_order(order, ctx) then
        if value < commerce.number_setting(ctx, "first_order_call_above", 0) then
          return nil
        end
        return map.activity {
          target = { "sap_sales", "PhoneCallCollection" },
          key = "welcome-call",
          -- A free external key on calls: finds the call again if the link is lost.
          match = { "link", map.lookup_value("GroupwareItemID", "bigcommerce:order:" .. id .. ":welcome-call") },
          fields = {
            Subject = commerce.cut(fill(commerce.setting(ctx, "first_order_subject",
              "Welcome call: first order {id} ({total}) from {buyer}"), order), 765),
            GroupwareItemID = "bigcommerce:order:" .. id .. ":welcome-call",
            StartDateTime = commerce.after(created, commerce.number_setting(ctx, "call_after_hours", 24)),
            MainContactPartyID = commerce.ref(ctx, contact(order, "ContactID", ferry.null)),
            OwnerPartyID = responsible(order, ctx, "PhoneCallCollection"),
          },
          owner = { OwnerPartyID = "sap_sales" },
        }
      end
      if value < commerce.number_setting(ctx, "repeat_order_task_above", 1000) then
        return nil
      end
      return map.activity {
        target = { "sap_sales", "TasksCollection" },
        key = "repeat-order",
        fields = {
          Subject = commerce.cut(fill(commerce.setting(ctx, "repeat_order_subject",
            "Thank {buyer} for repeat order {id} ({total})"), order), 765),
          DueDateTime = commerce.after(created, commerce.number_setting(ctx, "task_due_hours", 48)),
          MainContactPartyID = commerce.ref(ctx, contact(order, "ContactID", ferry.null)),
          MainEmployeeResponsiblePartyID = responsible(order, ctx, "TasksCollection"),
          PriorityCode = commerce.setting(ctx, "priority_code", nil),
        },
        owner = { MainEmployeeResponsiblePartyID = "sap_sales" },
      }
    end,

    status = function(order, ctx)
      if not live(ctx, "status_changed") then
        return nil
      end
      -- The webhook names the new status; the record (read afresh) agrees
      -- unless the status moved again since, and then the newer one counts.
      local data = type(ctx.event_data) == "table" and ctx.event_data or {}
      local status = commerce.id(map.get(order, "status_id") or map.get(data, "new_status_id"))
      local spec = commerce.setting(ctx, "status_tasks", DEFAULT_STATUS_TASKS)[status]
      if type(spec) ~= "table" then
        return nil
      end
      for _, covered in ipairs(commerce.setting(ctx, "statuses_covered_by_refund", { 4, 14 })) do
        if commerce.id(covered) == status then
          for _, e in ipairs(type(ctx.group_events) == "table" and ctx.group_events or {}) do
            if e.object == "refund" and e.event == "refund_created" then
              return nil
            end
          end
        end
      end
      return map.activity {
        target = { "sap_sales", "TasksCollection" },
        key = "status-" .. status,
        fields = {
          Subject = commerce.cut(fill(spec.subject or "Order {id} changed status", order), 765),
          DueDateTime = commerce.after(order_time(order),
                                       commerce.number(spec.hours) or 24),
          MainContactPartyID = commerce.ref(ctx, contact(order, "ContactID", ferry.null)),
          MainEmployeeResponsiblePartyID = responsible(order, ctx, "TasksCollection"),
          PriorityCode = spec.priority_code,
        },
        owner = { MainEmployeeResponsiblePartyID = "sap_sales" },
      }
    end,

    close_cart_task = function(order, ctx)
      local hours = commerce.number_setting(ctx, "close_cart_task_within_hours", 24)
      local cart = map.get(order, "cart_id")
      if hours <= 0 or not commerce.present(cart) or not live(ctx, "created", "converted") then
        return nil
      end
      return map.update {
        target = { "sap_sales", "TasksCollection" },
        key = "close-cart-task",
        match = { map.linked("cart", cart, { within_hours = hours }) },
        fields = { Status = commerce.setting(ctx, "cart_task_done_status", "3") },
      }
    end,

    qualify_lead = function(order, ctx)
      local status = commerce.setting(ctx, "lead_status_on_order", nil)
      local email = buyer_email(order)
      if status == nil or email == nil or not live(ctx, "created", "converted") then
        return nil
      end
      return map.update {
        target = { "sap_sales", "LeadCollection" },
        match = { "link", map.lookup_value("ContactEMail", email) },
        fields = { UserStatusCode = status },
      }
    end,
  },
}
