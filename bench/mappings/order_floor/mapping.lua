-- SPDX-License-Identifier: MIT
--
-- Bench only: the least a mapping can do to turn the shipped order fixture
-- into a sales order with its item lines. No helpers but the host's own
-- ferry.rows for the lines, no checks, no owner rules, no guest handling,
-- values passed through as the record has them; the fields and references
-- are those of mappings/order_to_sales_order's `sales_order` rule.
--
-- What it measures is the host's part of a mapping run, which no change to
-- a mapping file can remove: the record read through its lazy tables, the
-- engine's intent, the intents converted back to JSON. bench_mapping.py
-- prints it next to the shipped mapping, so that a gap between the two is
-- the mapping's and the rest is the host's (docs/performance.md).

local format = string.format
local null = ferry.null

-- The lines as the host builds them from the record's JSON (ferry.rows),
-- values as the record has them.
local LINES = ferry.rows({
  ID = { index = 10 }, ProductID = "sku", Description = "name", Quantity = { "quantity", "quantity" },
  QuantityMeasureUnitCode = { arg = 2 }, NetPriceAmount = "price_ex_tax",
  NetPriceAmountCurrencyCode = { arg = 1 },
}, "products")

local function buyer(property, default)
  return function(order)
    return { ["$ref"] = { object = "customer", id = format("%d", order.customer_id),
                          target = "ContactCollection", property = property,
                          default = default } }
  end
end

return {
  description = "bench only: an order as a sales order, by hand (the host's floor)",
  source = { "bigcommerce", "order", on = { "created", "updated" } },
  target = { "sap_sales", "CustomerOrderCollection" },
  key = "id",
  match = { "link" },
  fields = {
    BuyerID = function(order) return "BC-" .. order.id end,
    Name = function(order) return "BigCommerce order " .. order.id end,
    DateTime = "date_created",
    CurrencyCode = "default_currency_code",
    BuyerPartyID = buyer("AccountID", "1000123"),
    BuyerContactPartyID = buyer("ContactID", null),
    OrderExternalLifeCycleStatusCode = function(order, ctx)
      return ctx.settings.status_codes[format("%d", order.status_id)]
    end,
    CustomerOrderItem = function(order)
      return (LINES(order, order.currency_code, "EA"))
    end,
  },
  owner = { CustomerOrderItem = "sap_sales" },
}
