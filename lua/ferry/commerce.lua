-- SPDX-License-Identifier: MIT
--
-- Helpers shared by the shipped commerce mappings (orders, refunds, carts,
-- registrations, B2B companies): reading settings inside rule functions,
-- dates and money as the store sends them, the B2B/B2C decision, and:
--
--   commerce.ref{...}        a reference to another record's target-side id
--                            (a contact's AccountID, an order's buyer party),
--                            resolved by the core when it applies the intent;
--   commerce.rules_only{...} a mapping whose only output is its rules (a
--                            stand-in until mappings may omit their target).
--
-- See docs/mappings.md, "Shipped flows: what they share".
--
-- Mappings are pure: nothing here reads a clock, a file or the network.
-- Dates are computed from the record's own timestamps.

local map = require "ferry.map"

local null = ferry.null

-- Library functions as upvalues: a global is a miss in this module's own
-- environment and then a lookup in the shared globals, on every call, and
-- these run for every field of every record. The libraries are read-only,
-- so the copies never go stale.
local type, tostring, tonumber, ipairs, error = type, tostring, tonumber, ipairs, error
local math_floor = math.floor
local lower = string.lower

local commerce = {}

-- ---------------------------------------------------------------------------
-- Settings and values

-- A setting inside a rule or helper: map.setting works on (record, ctx) like
-- every value source, which reads badly in the middle of a function.
function commerce.setting(ctx, name, default)
  -- What map.setting(name, default)(nil, ctx) returns, without a closure per call.
  local settings = ctx and ctx.settings
  local v = type(settings) == "table" and settings[name] or nil
  if v == nil or v == null then
    return default
  end
  return v
end

-- A numeric setting (a threshold, a number of hours). Configuration may
-- give "100" as well as 100; anything else is a configuration mistake that
-- should say which setting, not fail on a comparison later.
function commerce.number_setting(ctx, name, default)
  local v = commerce.setting(ctx, name, default)
  local n = commerce.number(v)
  if n == nil then
    error("setting " .. name .. " must be a number, not " .. tostring(v), 2)
  end
  return n
end

-- A value that is really there: not nil, not JSON null, not "".
function commerce.present(v)
  return v ~= nil and v ~= null and v ~= ""
end

-- The normal forms of values (trimmed text, decimal amounts, dates, cut
-- text) are the host's: ferry.text, ferry.decimal, ferry.quantity,
-- ferry.time, ferry.iso and ferry.cut (core/src/normal.c, docs/mappings.md).
-- They run for nearly every field of every record, and written here in Lua
-- they were a quarter of an order's mapping cost.
commerce.text = ferry.text

-- The e-mail in the normal form the contact mappings use for lookups.
function commerce.email(v)
  local s = commerce.text(v)
  return s and lower(s) or nil
end

-- An id as the string the pipeline uses ("250", never "250.0"); an integral
-- number past the integers (1e300) is no id.
commerce.id = ferry.id

-- At most n characters (UTF-8), the last one an ellipsis when cut. Only for
-- free text such as a task subject; names and codes are validated instead,
-- because a silently shortened name is a wrong name.
commerce.cut = ferry.cut

-- ---------------------------------------------------------------------------
-- Money. The v2 API sends 4-decimal strings ("370.9500"), v3 sends JSON
-- numbers (20.83). Amounts stay strings (SAP's Edm.Decimal in JSON) and are
-- never summed in floating point here.

-- "370.9500" -> "370.95", 98.0 -> "98.00", "12" -> "12.00"; nil if not a number.
commerce.decimal = ferry.decimal

-- A quantity: "2" for whole numbers, a decimal string otherwise.
commerce.quantity = ferry.quantity

-- The currency of an order: the one the shopper saw (default_currency_code
-- in v2), else the transactional one. Read directly (as map.first would,
-- empty values skipped): it is asked for once per order and once per line.
function commerce.currency(order)
  if type(order) ~= "table" then
    return nil
  end
  local v = order.default_currency_code
  if v == nil or v == null or v == "" then
    v = order.currency_code
  end
  return commerce.text(v)
end

-- For comparisons with thresholds only (never for amounts that are written).
function commerce.number(v)
  if type(v) == "number" then
    return v
  end
  if type(v) == "string" then
    return tonumber(v)
  end
  return nil
end

-- "361.95 USD" for subjects; the amount alone when the currency is unknown.
function commerce.money(v, currency)
  local d = commerce.decimal(v)
  if d == nil then
    return nil
  end
  currency = commerce.text(currency)
  return currency and (d .. " " .. currency) or d
end

-- ---------------------------------------------------------------------------
-- Dates. The store uses four formats (facts 10.2): ISO 8601 (customers,
-- carts), RFC 2822 (v2 orders), RFC 3339 with an offset (refunds) and Unix
-- seconds (B2B). All become Unix seconds; targets get ISO 8601 UTC, which
-- SAP accepts for Edm.DateTimeOffset.

-- Unix seconds of a store timestamp, or nil when it is none of the formats.
commerce.time = ferry.time

-- ISO 8601 UTC ("2024-03-07T10:12:44Z") of Unix seconds.
commerce.iso = ferry.iso

-- The record's timestamp moved by `hours` (for due dates), as ISO 8601 UTC.
function commerce.after(v, hours)
  local t = commerce.time(v)
  if t == nil or type(hours) ~= "number" then
    return nil
  end
  return commerce.iso(t + math_floor(hours * 3600))
end

-- ---------------------------------------------------------------------------
-- B2B or B2C

-- Whether a customer is a business buyer ("b2b") or a consumer ("b2c"),
-- from the mapping's settings:
--   customer_model = "b2b" | "b2c" | "by_group"
--   b2c_customer_groups = { 1, 4 }   -- with "by_group": these groups are consumers
-- `default_model` is the mapping's own default, so that the contact mapping
-- (b2b) and the individual-customer mapping (b2c) each work when enabled
-- alone. A store with both kinds enables both and sets "by_group" in each.
function commerce.customer_kind(customer, ctx, default_model)
  local model = commerce.setting(ctx, "customer_model", default_model or "b2b")
  if model == "b2b" or model == "b2c" then
    return model
  end
  if model ~= "by_group" then
    error("setting customer_model must be \"b2b\", \"b2c\" or \"by_group\", not " .. tostring(model), 2)
  end
  local group = map.get(customer, "customer_group_id")
  for _, g in ipairs(commerce.setting(ctx, "b2c_customer_groups", {})) do
    if tostring(g) == tostring(group) then
      return "b2c"
    end
  end
  return "b2b"
end

-- ---------------------------------------------------------------------------
-- References and rules-only mappings

-- commerce.ref(ctx, { object = "customer", id = 4711,
--                     target = "ContactCollection", property = "ContactID",
--                     default = ferry.null })
-- commerce.ref(ctx, { lookup = { target = "ContactCollection", field = "Email",
--                                value = "a@b.c" }, property = "ContactID" })
--
-- A field whose value is another record's id in the target system: the
-- linked company's AccountID on a contact, the buyer's party on an order.
-- A mapping cannot read it (mappings do no I/O); the core announces
-- ctx.features.refs and resolves, while applying the intent (so after the
-- job's earlier intents, e.g. a contact created a moment before), a value
--   {"$ref": {"object": ..., "id": ..., "target": ..., "property": ...,
--             "default": ...}}
-- through its links table (source object + id -> target record; ObjectID is
-- the link itself, other properties are read from the target record) or
-- through a lookup in the target. A related record that is missing, or whose
-- property is empty, gives `default`:
--   default = ferry.null  the field is left out. For references the target
--                         does not need: a task's contact, an inherited
--                         owner. The job never waits for them.
--   default = <value>     that value (a configured fallback account).
--   no default            the job fails as "waiting for it to sync" and is
--                         retried with backoff until the record is there.
--                         Only for what the target cannot do without: an
--                         address's account, a sales order's buyer, the
--                         account a company user's contact belongs to.
-- Without ctx.features.refs (a fixture without it), or when the spec has no
-- id or lookup value to go by, this returns the default, ferry.null as nil.
local function fallback(spec)
  if spec.default == null then
    return nil
  end
  return spec.default
end

local function refs_on(ctx)
  local features = ctx and ctx.features
  return type(features) == "table" and features.refs == true
end

-- commerce.ref_to(ctx, object, id, target, property, default): the same as
-- commerce.ref(ctx, { object = ..., id = ..., ... }) for the by-id case,
-- without a table to describe it, for the mappings that make one per record.
function commerce.ref_to(ctx, object, id, target, property, default)
  if refs_on(ctx) then
    id = commerce.id(id)
    if id ~= nil and id ~= "0" then
      return { ["$ref"] = { object = object, id = id, target = target, property = property,
                            default = default } }
    end
  end
  if default == null then
    return nil
  end
  return default
end

function commerce.ref(ctx, spec)
  if not spec.lookup then
    return commerce.ref_to(ctx, spec.object, spec.id, spec.target, spec.property, spec.default)
  end
  if not refs_on(ctx) or not commerce.present(spec.lookup.value) then
    return fallback(spec)
  end
  local l = spec.lookup
  return { ["$ref"] = { property = spec.property, default = spec.default,
                        lookup = { target = l.target, field = l.field, value = l.value } } }
end

-- A mapping whose intents all come from its rules (an order becomes a phone
-- call or a task, depending): its own intent becomes an "update" with no
-- fields and no match rules, which the engine leaves out as it can change
-- nothing (docs/mappings.md). The target stays, as every mapping names one.
function commerce.rules_only(spec)
  spec.op = "update"
  spec.match = {}
  spec.fields = {}
  return spec
end

-- ---------------------------------------------------------------------------
-- Record shapes

-- The product lines of an order as the connector delivers them (the v2 link
-- object replaced by the lines), or nil when the record carries only the
-- link (polled with order_details_in_poll = false).
function commerce.order_lines(order)
  local p = order.products
  if type(p) ~= "table" or not ferry.is_array(p) then
    return nil
  end
  return p
end

-- The lines of a v3 cart, all kinds, each { name, sku, quantity, amount }.
local line_amount = map.first("extended_sale_price", "extended_list_price")

function commerce.cart_lines(cart)
  local out = {}
  local items = type(cart.line_items) == "table" and cart.line_items or {}
  for _, kind in ipairs({ "physical_items", "digital_items", "custom_items" }) do
    local list = items[kind]
    if type(list) == "table" then
      for _, it in ipairs(list) do
        out[#out + 1] = { name = commerce.text(map.get(it, "name")), sku = commerce.text(map.get(it, "sku")),
                          quantity = map.get(it, "quantity"), amount = line_amount(it) }
      end
    end
  end
  if type(items.gift_certificates) == "table" then
    for _, it in ipairs(items.gift_certificates) do
      out[#out + 1] = { name = "gift certificate " .. (commerce.text(map.get(it, "name")) or ""),
                        quantity = map.get(it, "quantity"), amount = map.get(it, "amount") }
    end
  end
  return out
end

-- "2 x Fog Linen Chambray Towel (SLCTBS), 1 x Rope Toy" for subjects.
function commerce.lines_text(lines)
  local parts = {}
  for _, l in ipairs(lines) do
    local q = commerce.quantity(l.quantity) or "1"
    local s = q .. " x " .. (l.name or "item")
    if l.sku then
      s = s .. " (" .. l.sku .. ")"
    end
    parts[#parts + 1] = s
  end
  return table.concat(parts, ", ")
end

-- A person's name from parts, "" parts left out.
function commerce.name(first, last)
  first, last = commerce.text(first), commerce.text(last)
  if first and last then
    return first .. " " .. last
  end
  return first or last
end

-- The country/region pair owner.lua's territories use, from an address
-- table in any of the store's shapes.
local place_country = map.first("country_code", "country_iso2", "countryCode")
local place_region = map.first("state_or_province", "state", "stateName", "stateCode")

function commerce.place(addr)
  if type(addr) ~= "table" then
    return nil, nil
  end
  return commerce.text(place_country(addr)), commerce.text(place_region(addr))
end

return commerce
