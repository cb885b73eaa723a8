-- SPDX-License-Identifier: MIT
-- ferry init: off (needs settings or overlaps another mapping; see below)
--
-- When an account with an open opportunity places an order, the
-- opportunity moves: sales phase, probability and expected value from a
-- table in the settings, by order value (the highest band whose min_total
-- the order reaches):
--
--   bands = {
--     { min_total = 0,    phase = "003", probability = 60 },
--     { min_total = 5000, phase = "004", probability = 90, expected_value = "order_total" },
--   }
--
-- `phase` is a SalesCyclePhaseCode and the codes are the tenant's own, so
-- there is no default table: with none, this mapping does nothing. An update
-- never creates an opportunity (op = "update"), and approval fields
-- (ApprovalStatusCode and the action flags) are never written; the SAP
-- connector also refuses to PATCH an opportunity that is in approval
-- (FERRY_EFORBIDDEN "in approval: ...").
--
-- The account is the AccountID of the contact customer_to_contact made for
-- the buyer (a reference in the lookup's value, resolved when the job runs;
-- a buyer without a synced contact, or a contact without an account, matches
-- nothing and nothing happens).
--
-- An opportunity in approval, or one the technical user may not change, is
-- refused by SAP (the connector answers "in approval: ..." or 403): the
-- owner then gets a task instead (`instead` below; subject from the setting
-- `blocked_subject`), and the job succeeds.
--
-- Only the account's *open* opportunity moves: the lookup also asks for
-- LifeCycleStatusCode in `open_statuses` (default { "1", "2" }, open and in
-- process; the codes are the tenant's). Won, lost or stopped ones are never
-- touched.
--
-- Not done, because the core cannot yet:
-- - choosing among several open opportunities of one account: two matches
--   fail the job as a duplicate (a person decides which one the order
--   concerns).
-- - adding to the expected value (current + order) needs the current value.

local map = require "ferry.map"
local commerce = require "ferry.commerce"

local function band(order, ctx)
  local bands = commerce.setting(ctx, "bands", {})
  local value = commerce.number(map.get(order, "total_inc_tax"))
  if type(bands) ~= "table" or value == nil then
    return nil
  end
  local best
  for _, b in ipairs(bands) do
    local min = commerce.number(b.min_total) or 0
    if value >= min and (best == nil or min >= (commerce.number(best.min_total) or 0)) then
      best = b
    end
  end
  return best
end

-- The account of the buyer's contact: a reference the core resolves when
-- the job runs (in a match rule, an unresolved one matches nothing).
local function account(order)
  local customer = commerce.id(map.get(order, "customer_id") or 0)
  if customer == nil or customer == "0" then
    return nil -- a guest has no account
  end
  return { ["$ref"] = { object = "customer", id = customer, target = "ContactCollection",
                        property = "AccountID" } }
end

local function from_band(name, convert)
  return function(order, ctx)
    local b = band(order, ctx)
    return b and convert(b[name], order) or nil
  end
end

return {
  description = "BigCommerce order -> move the account's open SAP Sales Cloud opportunity",
  source = { "bigcommerce", "order", on = { "created", "converted" } },
  target = { "sap_sales", "OpportunityCollection" },
  op     = "update",
  key    = "id",
  match  = { "link", map.lookup("ProspectPartyID", account, {
    LifeCycleStatusCode = function(_, ctx)
      return commerce.setting(ctx, "open_statuses", { "1", "2" })
    end,
  }) },
  fields = {
    SalesCyclePhaseCode = from_band("phase", commerce.text),             -- String(3)
    ProbabilityPercent  = from_band("probability", commerce.decimal),    -- Decimal
    ExpectedRevenueAmount = from_band("expected_value", function(v, order)
      if v == "order_total" then
        return commerce.decimal(map.get(order, "total_inc_tax"))
      end
      return commerce.decimal(v)
    end),                                                                -- Decimal
    ExpectedRevenueAmountCurrencyCode = from_band("expected_value", function(v, order)
      return v ~= nil and commerce.currency(order) or nil
    end),                                                                -- String(3)
  },
  filter = function(order, ctx)
    return band(order, ctx) ~= nil and account(order) ~= nil
  end,
  instead = function(order, ctx)
    local id = commerce.id(map.get(order, "id")) or "?"
    local b = band(order, ctx) or {}
    local subject = commerce.setting(ctx, "blocked_subject",
      "Order {id} ({total}) placed: move the account's opportunity to phase {phase} by hand "
      .. "(ferry may not change it: in approval or not changeable)")
    local values = { id = id, phase = commerce.text(b.phase) or "?",
                     total = commerce.money(map.get(order, "total_inc_tax"), commerce.currency(order))
                             or "?" }
    return map.activity {
      target = { "sap_sales", "TasksCollection" },
      key = "opportunity-blocked",
      fields = {
        Subject = commerce.cut((subject:gsub("{(%a+)}", function(k)
          return values[k] or ("{" .. k .. "}")
        end)), 765),
        DueDateTime = commerce.after(map.get(order, "date_created"),
                                     commerce.number_setting(ctx, "blocked_due_hours", 24)),
      },
    }
  end,
}
