-- SPDX-License-Identifier: MIT
--
-- An abandoned cart worth following up becomes a task in SAP Sales Cloud
-- (TasksCollection) with the cart's value and items: BigCommerce sends
-- store/cart/abandoned when a cart has not changed for an hour. Only carts
-- worth at least `min_value` (default 100, in the cart's currency) and whose
-- buyer is known (an e-mail or a customer account) make a task.
--
-- Not done, because the core cannot yet:
-- - closing the task when the buyer orders within N hours: that needs a
--   rule on the order that finds this task (tasks have no external-key
--   field to look up by, and the order does not carry the abandonment time)
--   and a condition on the found record's age; or a scheduled re-check.
-- - the contact (MainContactPartyID) and the owner inherited from it are
--   references (commerce.ref), left out until the core resolves them.

local map = require "ferry.map"
local commerce = require "ferry.commerce"
local owner = require "ferry.owner"

local function registered(cart)
  local c = commerce.id(map.get(cart, "customer_id") or 0)
  return c ~= nil and c ~= "0"
end

local function contact_ref(cart, ctx, property, default)
  if registered(cart) then
    return { object = "customer", id = map.get(cart, "customer_id"), target = "ContactCollection",
             property = property, default = default }
  end
  return { lookup = { target = "ContactCollection", field = "Email",
                      value = commerce.email(map.get(cart, "email")) },
           property = property, default = default }
end

return {
  description = "BigCommerce abandoned cart -> SAP Sales Cloud task with value and items",
  source = { "bigcommerce", "cart", on = { "abandoned" } },
  target = { "sap_sales", "TasksCollection" },
  key    = "id",
  match  = { "link" },
  fields = {
    Subject = function(cart, ctx)                                      -- String(765)
      local value = commerce.money(map.get(cart, "cart_amount"), map.get(cart, "currency.code"))
      local s = commerce.setting(ctx, "subject", "Abandoned cart") .. " " .. (value or "?") .. ": "
                .. commerce.lines_text(commerce.cart_lines(cart))
      local email = commerce.email(map.get(cart, "email"))
      if email then
        s = s .. " <" .. email .. ">"
      end
      return commerce.cut(s, 765)
    end,
    DueDateTime = function(cart, ctx)
      return commerce.after(map.first("updated_time", "created_time")(cart),
                            commerce.number_setting(ctx, "due_hours", 24))
    end,
    MainContactPartyID = function(cart, ctx)                           -- String(60)
      return commerce.ref(ctx, contact_ref(cart, ctx, "ContactID"))
    end,
    MainEmployeeResponsiblePartyID = function(cart, ctx)               -- String(60)
      return (owner.pick(ctx, "TasksCollection", {
        id = map.get(cart, "id"), inherit = contact_ref(cart, ctx, "ContactOwnerID"),
      }))
    end,
    PriorityCode = map.setting("priority_code", nil),                  -- String(1)
  },
  owner = { MainEmployeeResponsiblePartyID = "sap_sales" },
  filter = function(cart, ctx)
    local value = commerce.number(map.get(cart, "cart_amount"))
    if value == nil or value < commerce.number_setting(ctx, "min_value", 100) then
      return false
    end
    return registered(cart) or commerce.email(map.get(cart, "email")) ~= nil
  end,
}
