-- SPDX-License-Identifier: MIT
--
-- An abandoned cart worth following up becomes a task in SAP Sales Cloud
-- (TasksCollection) with the cart's value and items: BigCommerce sends
-- store/cart/abandoned when a cart has not changed for an hour. Only carts
-- worth at least `min_value` (default 100, in the cart's currency) and whose
-- buyer is known (an e-mail or a customer account) make a task.
--
-- When the buyer orders from the cart, order_to_activities (rule
-- close_cart_task) completes this task through its link (map.linked).
--
-- The contact (MainContactPartyID) and the owner inherited from it are
-- references (commerce.ref) resolved when the task is written; a buyer
-- without a synced contact gets a task without them.

local map = require "ferry.map"
local commerce = require "ferry.commerce"
local owner = require "ferry.owner"

-- When the cart was left: its last change, else its creation.
local cart_time = map.first("updated_time", "created_time")

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
      return commerce.after(cart_time(cart),
                            commerce.number_setting(ctx, "due_hours", 24))
    end,
    MainContactPartyID = function(cart, ctx)                           -- String(60)
      return commerce.ref(ctx, contact_ref(cart, ctx, "ContactID", ferry.null))
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
