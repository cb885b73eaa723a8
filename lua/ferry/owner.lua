-- SPDX-License-Identifier: MIT
--
-- Who owns a record ferry creates in the CRM (a contact, an account, a task,
-- a call, an order): the rules a sales organisation uses, tried in an order
-- the integrator chooses, per target object, from the mapping's settings:
--
--   owner = {
--     order = { "inherit", "territory", "round_robin", "fallback" },
--     territories = { DE = "8000000012",                         -- one owner
--                     ["US-TEXAS"] = { "8000000020", "8000000021" } }, -- a team
--     team = { "8000000030", "8000000031" },
--     fallback = "8000000001",
--     TasksCollection = { ... the same keys, for tasks only ... },
--   }
--
-- inherit      the owner of the account (or contact) the record belongs to,
--              a reference the core resolves when it writes (commerce.ref);
--              when that record or its owner is missing, the rules after
--              "inherit" decide, and with none the owner is left out.
-- territory    by the record's country, or "<country>-<region>" first (the
--              region as the store spells it, upper-cased: "US-TEXAS");
--              a list is a team and one member is picked as below.
-- round_robin  one member of `team`. Mappings are pure and keep no counter,
--              so this is a stable spread, not a rotation: the member is
--              picked by a hash (FNV-1a) of the record id, so a retried or
--              replayed job picks the same person and a team of n gets about
--              1/n of the records each. A true rotation needs state in the core.
-- fallback     a fixed employee.
--
-- Values are employee IDs as the target field expects them (ContactOwnerID,
-- OwnerID, MainEmployeeResponsiblePartyID, ...). Nothing configured: no owner
-- is sent and the CRM applies its own determination.
--
-- The chosen rule is returned as a second value ("territory DE") for tests
-- and for the audit trail once intents can carry a note (not yet possible).

local commerce = require "ferry.commerce"

local owner = {}

local DEFAULT_ORDER = { "inherit", "territory", "round_robin", "fallback" }

-- FNV-1a, 32 bits: small, stable across platforms and Lua versions.
function owner.hash(s)
  local h = 2166136261
  for i = 1, #s do
    h = h ~ s:byte(i)
    h = (h * 16777619) & 0xffffffff
  end
  return h
end

local function member(team, id)
  if type(team) == "string" then
    return team
  end
  if type(team) ~= "table" or #team == 0 then
    return nil
  end
  return team[owner.hash(commerce.id(id) or "") % #team + 1]
end

local function spec_for(ctx, object)
  local s = commerce.setting(ctx, "owner", nil)
  if type(s) ~= "table" then
    return nil
  end
  if type(s[object]) == "table" then
    return s[object]
  end
  return s
end

local pick_from

local function rule(spec, name, where, ctx, order, k)
  if name == "territory" then
    local t = spec.territories
    if type(t) ~= "table" then
      return nil -- no territories: no need to find the record's place
    end
    local country, region = where.country, where.region
    if country == nil and region == nil and where.place then
      country, region = where.place()
    end
    country = country and country:upper()
    region = region and region:upper()
    if country and region and t[country .. "-" .. region] then
      return member(t[country .. "-" .. region], where.id), "territory " .. country .. "-" .. region
    end
    if country and t[country] then
      return member(t[country], where.id), "territory " .. country
    end
  elseif name == "round_robin" then
    local m = member(spec.team, where.id)
    if m then
      return m, "round robin"
    end
  elseif name == "fallback" then
    if commerce.present(spec.fallback) then
      return spec.fallback, "fallback"
    end
  elseif name == "inherit" then
    if where.inherit then
      -- The rules after "inherit" decide when the reference finds nothing.
      local default, how = pick_from(spec, order, k + 1, where, ctx)
      local i = where.inherit
      -- Never wait for the record to inherit from: nothing left means no owner.
      if default == nil then
        default = ferry.null
      end
      local ref
      if i.lookup == nil then
        ref = commerce.ref_to(ctx, i.object, i.id, i.target, i.property, default)
      else
        local r = {}
        for key, v in pairs(i) do
          r[key] = v
        end
        r.default = default
        ref = commerce.ref(ctx, r)
      end
      if type(ref) == "table" then
        local from = i.target or (i.lookup and i.lookup.target) or "?"
        return ref, "inherit " .. from .. "." .. tostring(i.property)
                    .. (how and (", else " .. how) or "")
      end
      if default == ferry.null then
        return nil
      end
      return default, how
    end
  else
    error("owner: unknown rule '" .. tostring(name) .. "' (inherit, territory, round_robin, fallback)")
  end
  return nil
end

-- The first of the rules order[i..] that gives an owner.
pick_from = function(spec, order, i, where, ctx)
  for k = i, #order do
    local v, how = rule(spec, order[k], where, ctx, order, k)
    if v ~= nil then
      return v, how
    end
  end
  return nil, nil
end

-- Whether `settings` (a mapping's, as ctx.settings) has owner rules for
-- `object`: for a mapping's prepare, so that records of a deployment without
-- them skip owner.pick altogether.
function owner.configured(settings, object)
  return spec_for({ settings = settings }, object) ~= nil
end

-- owner.pick(ctx, object, where) -> value, how
--   object  the target set ("ContactCollection"): its own settings, if any
--   where   { id = record id, country = "DE", region = "Berlin",
--             inherit = { object = "customer", id = 42,
--                         target = "ContactCollection", property = "ContactOwnerID" } }
--           Instead of country and region, `place = function() return country,
--           region end`: called only when a territory rule is reached and
--           territories are configured.
--           `inherit` is a commerce.ref spec (a lookup works too); leave it out
--           when the record has nothing to inherit from.
--           May also be a function returning that table: it is called only
--           when `object` has owner settings, so that a deployment without
--           them does not pay for finding the record's address on every
--           record (owner.field passes its `where` this way).
function owner.pick(ctx, object, where)
  local spec = spec_for(ctx, object)
  if spec == nil then
    return nil, nil
  end
  if type(where) == "function" then
    where = where()
  end
  local order = type(spec.order) == "table" and spec.order or DEFAULT_ORDER
  local v, how = pick_from(spec, order, 1, where, ctx)
  -- The engine hands ctx.notes to the daemon, which writes each into the
  -- job's audit: an operator sees which rule chose the owner.
  if v ~= nil and type(ctx) == "table" then
    ctx.notes = type(ctx.notes) == "table" and ctx.notes or {}
    ctx.notes[#ctx.notes + 1] = object .. " owner " .. (type(v) == "table" and "(reference)"
      or tostring(v)) .. " chosen by rule " .. tostring(how)
  end
  return v, how
end

-- A value source for `fields`: owner.field("ContactCollection", function(record)
-- return { id = record.id, country = ..., region = ... } end)
function owner.field(object, where)
  return function(record, ctx)
    return (owner.pick(ctx, object, function()
      return where(record, ctx)
    end))
  end
end

return owner
