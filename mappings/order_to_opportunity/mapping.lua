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
-- Not done, because the core cannot yet:
-- - knowing the account: ProspectPartyID is the account of the buyer's
--   contact, a reference (commerce.ref). Until the core resolves it, no
--   order is matched and nothing happens.
-- - "open" opportunities only: a lookup compares one field, so it cannot say
--   ProspectPartyID eq X and LifeCycleStatusCode eq open, nor choose among
--   several (two matches fail the job as a duplicate).
-- - a task instead of an update when the opportunity is in approval or the
--   technical user may not change it: the write fails (the job is parked,
--   with the reason) and rules never see that failure. Enable this mapping
--   after the other order mappings: a parked update then does not hold
--   back their writes of the same job.
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

local function account(order, ctx)
  if commerce.id(map.get(order, "customer_id") or 0) == "0" then
    return nil -- a guest has no account
  end
  return commerce.ref(ctx, { object = "customer", id = map.get(order, "customer_id"),
                             target = "ContactCollection", property = "AccountID" })
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
  match  = { "link", map.lookup("ProspectPartyID", account) },
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
      return v ~= nil and commerce.text(map.first("default_currency_code", "currency_code")(order))
             or nil
    end),                                                                -- String(3)
  },
  filter = function(order, ctx)
    return band(order, ctx) ~= nil and account(order, ctx) ~= nil
  end,
}
