-- SPDX-License-Identifier: MIT
--
-- Helpers for mapping files (docs/mappings.md): value sources for `fields`
-- and match rules for `match`. A value source is either a path string
-- ("a.b.c", "addresses.1.city") or a function(record, ctx) -> value; every
-- helper below accepts either and returns a function, so they compose:
--   map.lower(map.trim "email")
--
-- "Empty" means absent: a missing key, JSON null and "" all read as nil, so
-- the field is left out of the intent instead of clearing the target's value
-- (the source system sends "" for "never filled in"). To clear a target
-- field on purpose, return ferry.null from a function.

local null = ferry.null
local array = ferry.array

-- Library functions as upvalues: a global is a miss in this module's own
-- environment and then a lookup in the shared globals, on every call, and
-- these run for every field of every record. The libraries are read-only,
-- so the copies never go stale.
local type, tostring, ipairs, pairs, select, error =
  type, tostring, ipairs, pairs, select, error
local find, str_match, byte, sub = string.find, string.match, string.byte, string.sub
local math_floor = math.floor

local map = {}

-- The path when it is one plain key ("email", not "a.b" or "2"): a value
-- source for it reads the key itself, without a call to map.get.
local function plain_key(path)
  if find(path, ".", 1, true) or str_match(path, "^%d+$") then
    return nil
  end
  return path
end

-- The value at `path` in `record`, or nil when any step is missing or empty.
-- A numeric step indexes an array (1-based, as Lua); otherwise it is a key.
-- The host's (ferry.get): mappings read most fields through it.
map.get = ferry.get

local function source(src, who, level)
  if type(src) == "string" then
    local key = plain_key(src)
    if key then
      -- One plain key: what map.get does for it, without calling it.
      return function(record)
        if type(record) ~= "table" then
          return nil
        end
        local v = record[key]
        if v == null or v == "" then
          return nil
        end
        return v
      end
    end
    return function(record)
      return map.get(record, src)
    end
  elseif type(src) == "function" then
    return src
  end
  error(who .. ": expected a path or a function, got " .. type(src), level + 1)
end

-- map.path "a.b": the value at a path, as a function.
function map.path(p)
  if type(p) ~= "string" then
    error("map.path: expected a path string, got " .. type(p), 2)
  end
  return source(p, "map.path", 2)
end

-- map.const(v): always v (use for fixed codes such as a status).
function map.const(v)
  return function()
    return v
  end
end

local function string_op(name, op)
  return function(src)
    local f = source(src, "map." .. name, 2)
    return function(record, ctx)
      local v = f(record, ctx)
      if type(v) == "string" then
        v = op(v)
        if v == "" then
          return nil
        end
      end
      return v
    end
  end
end

-- ASCII only: string.lower/upper work on bytes in the C locale.
map.lower = string_op("lower", string.lower)
map.upper = string_op("upper", string.upper)
-- Byte scanning rather than a pattern: linear on any input (the "^%s*(.-)%s*$"
-- idiom is quadratic on long runs of blanks).
local function is_blank(b)
  return b == 32 or (b >= 9 and b <= 13)
end
map.trim = string_op("trim", function(s)
  local n = #s
  local first, last = byte(s, 1), byte(s, n)
  if first and first > 32 and last > 32 then
    return s -- the usual case, decided without the loops
  end
  local i, j = 1, n
  while i <= j and is_blank(byte(s, i)) do
    i = i + 1
  end
  while j >= i and is_blank(byte(s, j)) do
    j = j - 1
  end
  if i == 1 and j == n then
    return s -- nothing to trim: the same string, without copying it
  end
  return sub(s, i, j)
end)

-- map.first(a, b, ...): the first source that is not empty.
function map.first(...)
  local fs = {}
  for i = 1, select("#", ...) do
    fs[i] = source(select(i, ...), "map.first", 2)
  end
  local n = #fs
  return function(record, ctx)
    for i = 1, n do
      local v = fs[i](record, ctx)
      if v ~= nil and v ~= null and v ~= "" then
        return v
      end
    end
    return nil
  end
end

-- map.lookup(field, src): a match rule: find the target record whose `field`
-- equals the value of `src`. Skipped when that value is empty.
-- map.lookup(field, src[, where]): `where` adds conditions the found record
-- must also meet, { TargetField = value, list of values, or function(record,
-- ctx) returning either }, e.g. { LifeCycleStatusCode = { "1", "2" } } for
-- open opportunities only.
local function check_lookup(who, field, where)
  if type(field) ~= "string" or field == "" then
    error(who .. ": expected a target field name, got " .. type(field), 3)
  end
  if where ~= nil and type(where) ~= "table" then
    error(who .. ": where must be a table { TargetField = value or list }", 3)
  end
end

function map.lookup(field, src, where)
  check_lookup("map.lookup", field, where)
  return { rule = "lookup", field = field, value = source(src, "map.lookup", 2), where = where }
end

-- map.lookup_value(field, value[, where]): map.lookup with the value itself
-- rather than where to read it (a string is a value here, not a path), for
-- rules, which have their values at hand: no function per record. Without
-- `where`, the table is already the rule as intents carry it, so a rule's
-- intent takes it as it is; the metatable says its value is not a path.
local LITERAL = { __metatable = "ferry.lookup_value" }

function map.lookup_value(field, value, where)
  check_lookup("map.lookup_value", field, where)
  return setmetatable({ rule = "lookup", field = field, value = value, where = where }, LITERAL)
end

-- Whether match rule r was made by map.lookup_value (its value is the value).
function map.is_literal(r)
  return getmetatable(r) == "ferry.lookup_value"
end

-- The conditions of a lookup for one record: functions called, lists kept
-- as arrays, empty values dropped. nil when there are none.
function map.where_values(where, record, ctx)
  if where == nil then
    return nil
  end
  local out, n = {}, 0
  for k, v in pairs(where) do
    if type(v) == "function" then
      v = v(record, ctx)
    end
    if type(v) == "table" then
      local list = array {}
      for i, x in ipairs(v) do
        list[i] = tostring(x)
      end
      v = #list > 0 and list or nil
    elseif v ~= nil and v ~= null and v ~= "" then
      v = tostring(v)
    else
      v = nil
    end
    if v ~= nil then
      out[k] = v
      n = n + 1
    end
  end
  return n > 0 and out or nil
end

-- map.ref{ source = { "bigcommerce", "company" }, id = "company_id",
--          target = { "sap_sales", "CorporateAccountCollection" }, field = "AccountID" }
-- The target's counterpart of another source record, resolved by the daemon
-- from its link table when the job runs (field "id", the default, is the
-- target's own key). Until that record has been synced the job waits.
function map.ref(spec)
  if type(spec) ~= "table" or type(spec.source) ~= "table" or type(spec.target) ~= "table" then
    error("map.ref: expected { source = {system, object}, id = path, target = {system, object} }", 2)
  end
  local id = source(spec.id or "id", "map.ref", 2)
  return function(record, ctx)
    local v = id(record, ctx)
    if v == nil or v == null or v == 0 or v == "0" then
      return nil -- no related record (e.g. a guest or a customer without a company)
    end
    return { ["$ref"] = { system = spec.source[1], object = spec.source[2], id = tostring(v),
                          target = spec.target[1], target_object = spec.target[2],
                          field = spec.field or "id" } }
  end
end

-- map.setting(name, default): a value from the mapping's settings in the
-- configuration (mappings.settings.<mapping>.<name>, handed in as
-- ctx.settings), so that thresholds and tables live in config, not code.
function map.setting(name, default)
  return function(_, ctx)
    local s = ctx and ctx.settings
    local v = type(s) == "table" and s[name] or nil
    if v == nil or v == null then
      return default
    end
    return v
  end
end

-- map.linked(object, id, { system = ..., within_hours = N }): in a rule's
-- match list, the target record that another source record (object, id) of
-- the same system was synced to, e.g. the task an abandoned cart made,
-- found from the order that followed. within_hours: only if ferry wrote
-- that record less than N hours ago.
function map.linked(object, id, opts)
  if type(object) ~= "string" or object == "" then
    error("map.linked: the first argument is the source object name", 2)
  end
  opts = opts or {}
  local hours = opts.within_hours
  if hours ~= nil and (type(hours) ~= "number" or hours <= 0) then
    error("map.linked: within_hours must be a positive number", 2)
  end
  return { rule = "linked", object = object, id = id, system = opts.system,
           max_age_ms = hours and math_floor(hours * 3600000) or nil }
end

-- A rule's match list, checked where the rule made it; finish_intent builds
-- the intent's own list from it, so it is not copied here.
local DEFAULT_MATCH = { "link" }

local function check_match(rules, who)
  rules = rules or DEFAULT_MATCH
  for i = 1, #rules do
    local r = rules[i]
    if r ~= "link" and (type(r) ~= "table" or (r.rule ~= "lookup" and r.rule ~= "linked")) then
      error(who .. ": match[" .. i .. "] must be \"link\", map.lookup(...) or map.linked(...)", 3)
    end
  end
  return rules
end

-- A rule's target as its intents carry it, converted to JSON once per
-- target list and shared by reference (ferry.intent_head), checked against
-- the list each time so that a list changed since still gets its own.
local TARGETS = setmetatable({}, { __mode = "k" })

local function target_of(t, who)
  local c = t ~= nil and TARGETS[t]
  if not c or c[1] ~= t[1] or c[2] ~= t[2] then
    if type(t) ~= "table" or type(t[1]) ~= "string" or type(t[2]) ~= "string" then
      error(who .. ": target must be { system, object }", 4)
    end
    c = { t[1], t[2], ferry.intent_head { system = t[1], object = t[2] } }
    TARGETS[t] = c
  end
  return c[3]
end

local function intent(op, spec, who)
  if type(spec) ~= "table" then
    error(who .. ": expected a table", 3)
  end
  local target = target_of(spec.target, who)
  if op == "upsert" and (type(spec.key) ~= "string" or spec.key == "") then
    -- Without a key, a retried job could not find the record it created.
    error(who .. ": key must be a non-empty string (it makes the write idempotent)", 3)
  end
  if type(spec.fields) ~= "table" then
    error(who .. ": fields must be a table of values", 3)
  end
  if spec.instead ~= nil and (type(spec.instead) ~= "table" or spec.instead.op ~= "upsert") then
    error(who .. ": instead must be a map.activity{...} (what to create when the write is refused)", 3)
  end
  return { op = op, key = spec.key, target = target,
           match = check_match(spec.match, who), fields = spec.fields, owner = spec.owner,
           instead = spec.instead }
end

-- map.activity{ target = { "crm", "TasksCollection" }, key = "follow-up",
--               fields = { Subject = "...", ... }, match = { ... } }
-- A record created once per source record and key (a task, a phone call),
-- updated if the rule produces it again with other values.
function map.activity(spec)
  return intent("upsert", spec, "map.activity")
end

-- map.update{ target = ..., match = { map.lookup(...) }, fields = { ... } }
-- Change an existing record found by the match rules; never create one
-- (e.g. move an open opportunity's stage). No match: nothing happens.
function map.update(spec)
  return intent("update", spec, "map.update")
end

local NO_OWNER = {}

-- map.fixed(t): t converted to JSON once, for a value every record's intent
-- shares (a rule's owner table): intents take it by reference. It cannot be
-- read or changed from Lua afterwards.
function map.fixed(t)
  if type(t) ~= "table" then
    error("map.fixed: expected a table, got " .. type(t), 2)
  end
  return ferry.intent_head(t)
end
-- The link rule as intents carry it: converted to JSON once, shared by reference.
local LINK = ferry.intent_head { rule = "link" }
map.LINK = LINK

-- Used by the engine: a rule's intent in the host's format (core/src/mapping.h).
-- With `index` (its place in the engine's list), made by the host at once
-- (ferry.intent) from the mapping's rule_head; without, as a table (an
-- alternative inside another intent).
function map.finish_intent(it, m, source_id, event, rule, n, record, ctx, index)
  if type(it) ~= "table" or (it.op ~= "upsert" and it.op ~= "update") then
    error(m.path .. ": rules." .. rule .. "[" .. n .. "] is not an intent (use map.activity or map.update)", 0)
  end
  -- Made at once (index), the intent is converted before any rule runs
  -- again, so the rule's own table will do; a table intent is converted
  -- only at the end of the run, so it gets a copy a later rule cannot change.
  -- The conversion checks the fields (names are strings, values are not
  -- functions) and names the one at fault ("intents[2].fields.Subject").
  local fields = it.fields
  if not index then
    fields = {}
    for k, v in pairs(it.fields) do
      fields[k] = v
    end
  end
  local match = array {}
  local rules = it.match
  for i = 1, #rules do
    local r = rules[i]
    if r == "link" then
      match[#match + 1] = LINK
    elseif r.rule == "linked" then
      if r.id ~= nil and r.id ~= null and r.id ~= "" then
        match[#match + 1] = { rule = "linked", object = r.object, id = tostring(r.id),
                              system = r.system, max_age_ms = r.max_age_ms }
      end
    else
      local v = r.value
      if type(v) == "function" then
        v = v(record, ctx) -- map.lookup(field, path-or-function), as at the top level
      end
      if v == nil or v == null or v == "" then
        -- skipped: no value to look up
      elseif index and r.where == nil and getmetatable(r) == "ferry.lookup_value" then
        match[#match + 1] = r -- converted at once, before the rule can change it
      else
        match[#match + 1] = { rule = "lookup", field = r.field, value = v,
                              where = r.where and map.where_values(r.where, record, ctx) }
      end
    end
  end
  local owner = it.owner or NO_OWNER
  if not index and type(owner) == "table" then
    owner = {}
    for k, v in pairs(it.owner or NO_OWNER) do
      owner[k] = v
    end
  end
  local instead
  if it.instead ~= nil then
    -- The alternative gets a link of its own (rule key + "-instead"), so a
    -- retried job finds the task it already made.
    instead = map.finish_intent(it.instead, m, source_id, event, rule .. "-instead", n, record, ctx)
  end
  local id = source_id .. "#" .. (it.key or rule)
  if index then
    -- Decisions recorded while the rule ran (which owner rule chose) go
    -- with its intent, so that a mapping of rules only needs no intent of
    -- its own to carry them to the job's audit.
    local notes
    local recorded = ctx and ctx.notes
    if type(recorded) == "table" and #recorded > 0 then
      notes = array {}
      for i = 1, #recorded do
        notes[i] = recorded[i]
      end
      ctx.notes = nil
    end
    return ferry.intent(m.rule_head, m.path, index, id, event, it.op, rule, it.target, match,
                        fields, owner, nil, instead, notes)
  end
  return {
    op = it.op,
    mapping = m.name,
    rule = rule,
    source = { system = m.source.system, object = m.source.object, id = id, event = event },
    target = it.target,
    match = match,
    fields = fields,
    owner = owner,
    instead = instead,
  }
end

return map
