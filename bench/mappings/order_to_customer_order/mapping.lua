-- SPDX-License-Identifier: MIT
--
-- Bench-only (bench/bench_mapping.c): a BigCommerce v2 order, with the
-- products and shipping addresses a poll with order_details_in_poll brings,
-- becomes an SAP CustomerOrder with its items. No shipped mapping reads
-- orders yet (issue 5); this one does the work such a mapping has to do
-- (a status table, money as strings, nested lines) so that the mapping
-- benchmark has an order figure until the shipped one replaces it: the
-- benchmark prefers any mappings/*order*/ directory over this one.

local map = require "ferry.map"

-- BigCommerce status_id -> CustomerOrder external life-cycle status.
local STATUS = {
  [0] = "1", [1] = "1", [7] = "1", [8] = "2", [9] = "2", [11] = "2", [12] = "2",
  [2] = "3", [3] = "3", [10] = "4", [4] = "5", [14] = "5", [5] = "6", [6] = "6", [13] = "7",
}

local function status(record)
  return STATUS[tonumber(record.status_id)]
end

local function items(record)
  local out = {}
  local lines = record.products
  if type(lines) ~= "table" then
    return ferry.array(out)
  end
  for _, line in ipairs(lines) do
    if type(line) == "table" then
      out[#out + 1] = {
        ProductID = line.sku ~= "" and line.sku or tostring(line.product_id),
        Description = line.name,
        Quantity = tostring(line.quantity),
        QuantityMeasureUnitCode = "EA",
        NetPriceAmount = line.price_ex_tax,
        NetPriceAmountCurrencyCode = record.currency_code,
      }
    end
  end
  return ferry.array(out)
end

-- v2 order dates are RFC 2822 ("Tue, 05 Mar 2024 10:12:44 +0000", always UTC).
local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                 Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

local function iso_date(path)
  return function(record)
    local text = map.get(record, path)
    if type(text) ~= "string" then
      return nil
    end
    local d, mon, y, hms = text:match("^%a+, (%d+) (%a+) (%d+) (%d+:%d+:%d+)")
    if not d or not MONTHS[mon] then
      return nil
    end
    return string.format("%s-%02d-%02dT%sZ", y, MONTHS[mon], tonumber(d), hms)
  end
end

local buyer_email = map.lower(map.trim "billing_address.email")

return {
  description = "BigCommerce order -> SAP CustomerOrder (bench-only)",
  source = { "bigcommerce", "order", on = { "created", "updated", "status_changed" } },
  target = { "sap_sales", "CustomerOrderCollection" },
  key    = "id",
  match  = { "link", map.lookup("BuyerID", function(record) return "BC-" .. tostring(record.id) end) },
  fields = {
    BuyerID = function(record) return "BC-" .. tostring(record.id) end,
    Name = function(record)
      return "Web order " .. tostring(record.id) .. " (" .. (buyer_email(record) or "guest") .. ")"
    end,
    DateTime = iso_date "date_created",
    CurrencyCode = map.upper "currency_code",
    OrderExternalLifeCycleStatusCode = status,
    CustomerOrderItem = items,
  },
  filter = function(record, ctx) return tonumber(record.status_id) ~= 0 end,
}
