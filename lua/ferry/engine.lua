-- SPDX-License-Identifier: MIT
--
-- The mapping engine, loaded once per Lua state by the host (core/src/
-- mapping.c). compile() checks a mapping table when it is loaded, so that a
-- typo fails the reload instead of a job at 3 a.m.; run() turns one source
-- record into intents (the format is in core/src/mapping.h and
-- docs/mappings.md). Written in Lua so that integrators can read exactly
-- what their mapping means.

local map = require "ferry.map"

local null = ferry.null
local array = ferry.array
local intent_head, intent = ferry.intent_head, ferry.intent
local NO_MATCH = array {}
local get = map.get

-- Library functions as upvalues: a global is a miss in this module's own
-- environment and then a lookup in the shared globals, on every call, and
-- run() is called for every record. The libraries are read-only, so the
-- copies never go stale.
local type, tostring, pairs, ipairs, error = type, tostring, pairs, ipairs, error
local math_type, math_floor, math_tointeger = math.type, math.floor, math.tointeger
local utf8_len = utf8.len
local table_insert = table.insert

local engine = {}

local TOP_KEYS = {
  source = true, target = true, key = true, match = true,
  fields = true, owner = true, filter = true, description = true,
  op = true, validate = true, rules = true, conflict = true, instead = true, link_from = true,
  prepare = true,
}

-- What happens to a field both systems changed since the last sync.
local POLICIES = { source = true, target = true, newer = true, park = true }
local CONFLICT_KEYS = { policy = true, fields = true, source_time = true, target_time = true }

local VALIDATE_KEYS = { required = true, max_length = true, format = true, pattern = true }

-- Formats a field can be checked against; each returns true when v is fine.
local FORMATS = {
  email = function(v)
    return type(v) == "string" and v:find("^[^%s@]+@[^%s@]+%.[^%s@]+$") ~= nil
  end,
  integer = function(v)
    return math.type(v) == "integer" or (type(v) == "string" and v:find("^%-?%d+$") ~= nil)
  end,
  decimal = function(v)
    return type(v) == "number" or (type(v) == "string" and v:find("^%-?%d+%.?%d*$") ~= nil)
  end,
  country = function(v)
    return type(v) == "string" and v:find("^%u%u$") ~= nil
  end,
}

local function fail(path, fmt, ...)
  error(path .. ": " .. string.format(fmt, ...), 0)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  table.sort(keys, function(a, b)
    return tostring(a) < tostring(b)
  end)
  return keys
end

local function check_only(t, allowed, path, where)
  for _, k in ipairs(sorted_keys(t)) do
    if not allowed[k] then
      fail(path, "unknown key %s in %s", type(k) == "string" and ("'" .. k .. "'") or tostring(k), where)
    end
  end
end

local function check_endpoint(v, path, what, with_on)
  if type(v) ~= "table" then
    fail(path, "'%s' must be a table { system, object%s }", what, with_on and ", on = {...}" or "")
  end
  check_only(v, { [1] = true, [2] = true, on = with_on or nil }, path, "'" .. what .. "'")
  if type(v[1]) ~= "string" or v[1] == "" then
    fail(path, "%s[1] must be a connector instance name", what)
  end
  if type(v[2]) ~= "string" or v[2] == "" then
    fail(path, "%s[2] must be an object name", what)
  end
  local ep = { system = v[1], object = v[2] }
  if with_on and v.on ~= nil then
    if type(v.on) ~= "table" or #v.on == 0 then
      fail(path, "%s.on must be a non-empty list of event names", what)
    end
    ep.on = {}
    for i = 1, #v.on do
      if type(v.on[i]) ~= "string" or v.on[i] == "" then
        fail(path, "%s.on[%d] must be an event name", what, i)
      end
      ep.on[i] = v.on[i]
    end
    check_only(v.on, setmetatable({}, { __index = function(_, k)
      return math.type(k) == "integer" and k >= 1 and k <= #v.on
    end }), path, what .. ".on")
  end
  return ep
end

local function check_source(v, path, what)
  if type(v) == "string" or type(v) == "function" then
    return v
  end
  fail(path, "%s must be a path string or a function (use map.const for a fixed value), got %s",
       what, type(v))
end

-- Checks a mapping table and returns it normalized; errors name the file.
function engine.compile(spec, name, path)
  if type(spec) ~= "table" then
    fail(path, "a mapping must return a table, got %s", type(spec))
  end
  check_only(spec, TOP_KEYS, path, "the mapping")
  local m = { name = name, path = path }
  m.source = check_endpoint(spec.source, path, "source", true)
  m.target = check_endpoint(spec.target, path, "target", false)
  m.key = spec.key == nil and "id" or check_source(spec.key, path, "key")

  local match = spec.match
  if match == nil then
    match = { "link" }
  end
  if type(match) ~= "table" then
    fail(path, "'match' must be a list of rules")
  end
  m.match = {}
  for i = 1, #match do
    local r = match[i]
    if r == "link" then
      m.match[i] = { rule = "link" }
    elseif type(r) == "table" and r.rule == "lookup" and type(r.field) == "string"
        and (type(r.value) == "function" or type(r.value) == "string" or map.is_literal(r)) then
      if r.where ~= nil and type(r.where) ~= "table" then
        fail(path, "match[%d]: where must be a table", i)
      end
      -- The engine reads a string as a path; map.lookup_value's is the value.
      local value = r.value
      if map.is_literal(r) then
        value = map.const(value)
      end
      m.match[i] = { rule = "lookup", field = r.field, value = value, where = r.where }
    else
      fail(path, "match[%d] must be \"link\" or map.lookup(field, value)", i)
    end
  end
  check_only(match, setmetatable({}, { __index = function(_, k)
    return math.type(k) == "integer" and k >= 1 and k <= #match
  end }), path, "'match'")

  if type(spec.fields) ~= "table" then
    fail(path, "'fields' must be a table { TargetField = path or function }")
  end
  m.fields = {}
  for _, k in ipairs(sorted_keys(spec.fields)) do
    if type(k) ~= "string" or k == "" then
      fail(path, "fields: key %s is not a field name", tostring(k))
    end
    m.fields[k] = check_source(spec.fields[k], path, "fields." .. k)
  end

  m.owner = {}
  if spec.owner ~= nil then
    if type(spec.owner) ~= "table" then
      fail(path, "'owner' must be a table { TargetField = system }")
    end
    for _, k in ipairs(sorted_keys(spec.owner)) do
      -- "*" names the system of record of the whole object: every field
      -- without an entry of its own is set on create only when it is the
      -- target, and flows freely when it is the source.
      if type(k) ~= "string" or (m.fields[k] == nil and k ~= "*") then
        fail(path, "owner: %s is not one of the mapped fields", tostring(k))
      end
      if type(spec.owner[k]) ~= "string" or spec.owner[k] == "" then
        fail(path, "owner.%s must be a connector instance name", k)
      end
      m.owner[k] = spec.owner[k]
    end
  end

  m.conflict = nil
  if spec.conflict ~= nil then
    local c = spec.conflict
    if type(c) == "string" then
      c = { policy = c }
    end
    if type(c) ~= "table" then
      fail(path, "'conflict' must be a policy name or a table { policy = ..., fields = {...} }")
    end
    check_only(c, CONFLICT_KEYS, path, "'conflict'")
    local policy = c.policy == nil and "source" or c.policy
    if not POLICIES[policy] then
      fail(path, "conflict.policy must be one of source, target, newer, park")
    end
    local fields = {}
    for _, k in ipairs(sorted_keys(c.fields or {})) do
      if type(k) ~= "string" or m.fields[k] == nil then
        fail(path, "conflict.fields: %s is not one of the mapped fields", tostring(k))
      end
      if not POLICIES[c.fields[k]] then
        fail(path, "conflict.fields.%s must be one of source, target, newer, park", k)
      end
      fields[k] = c.fields[k]
    end
    if c.source_time ~= nil then
      check_source(c.source_time, path, "conflict.source_time")
    end
    if c.target_time ~= nil and type(c.target_time) ~= "string" then
      fail(path, "conflict.target_time must be the name of the target's change-time field")
    end
    m.conflict = { policy = policy, fields = fields, source_time = c.source_time,
                   target_time = c.target_time }
  end

  m.op = spec.op == nil and "upsert" or spec.op
  if m.op ~= "upsert" and m.op ~= "update" and m.op ~= "link" then
    fail(path, "'op' must be \"upsert\" (create or update), \"update\" (never create) or "
         .. "\"link\" (record a counterpart, write nothing)")
  end
  -- op = "link": the record the match rules find in the target becomes the
  -- counterpart of the source record this one was made from (link_from =
  -- { system, object }, found through ferry's link to this record), e.g. the
  -- contact a lead was converted into, for the customer that made the lead.
  if m.op == "link" then
    local lf = spec.link_from
    if type(lf) ~= "table" or type(lf[1]) ~= "string" or type(lf[2]) ~= "string" then
      fail(path, "op = \"link\" needs link_from = { system, object }")
    end
    m.link_from = { system = lf[1], object = lf[2] }
  elseif spec.link_from ~= nil then
    fail(path, "link_from is only for op = \"link\"")
  end

  m.validate = {}
  if spec.validate ~= nil then
    if type(spec.validate) ~= "table" then
      fail(path, "'validate' must be a table { TargetField = { required = true, ... } }")
    end
    for _, k in ipairs(sorted_keys(spec.validate)) do
      local rule = spec.validate[k]
      if type(k) ~= "string" or m.fields[k] == nil then
        fail(path, "validate: %s is not one of the mapped fields", tostring(k))
      end
      if type(rule) ~= "table" then
        fail(path, "validate.%s must be a table", k)
      end
      check_only(rule, VALIDATE_KEYS, path, "validate." .. k)
      if rule.max_length ~= nil and math.type(rule.max_length) ~= "integer" then
        fail(path, "validate.%s.max_length must be an integer", k)
      end
      if rule.format ~= nil and not FORMATS[rule.format] then
        fail(path, "validate.%s.format must be one of email, integer, decimal, country", k)
      end
      if rule.pattern ~= nil and type(rule.pattern) ~= "string" then
        fail(path, "validate.%s.pattern must be a Lua pattern string", k)
      end
      m.validate[k] = rule
    end
  end

  m.rules = {}
  if spec.rules ~= nil then
    if type(spec.rules) ~= "table" then
      fail(path, "'rules' must be a table { name = function(record, ctx) ... end }")
    end
    for _, k in ipairs(sorted_keys(spec.rules)) do
      if type(k) ~= "string" or type(spec.rules[k]) ~= "function" then
        fail(path, "rules.%s must be a function(record, ctx)", tostring(k))
      end
      m.rules[#m.rules + 1] = { name = k, fn = spec.rules[k] }
    end
  end

  if spec.instead ~= nil and type(spec.instead) ~= "function" then
    fail(path, "'instead' must be a function(record, ctx) returning map.activity{...} or nil")
  end
  m.instead = spec.instead

  if spec.filter ~= nil and type(spec.filter) ~= "function" then
    fail(path, "'filter' must be a function(record, ctx)")
  end
  m.filter = spec.filter
  if spec.prepare ~= nil and type(spec.prepare) ~= "function" then
    fail(path, "'prepare' must be a function(settings)")
  end
  m.prepare = spec.prepare
  if spec.description ~= nil and type(spec.description) ~= "string" then
    fail(path, "'description' must be a string")
  end

  -- What run() walks for every record, as lists built once here: a numeric
  -- loop over them costs less than pairs() over the tables above, which
  -- stay as they are for the host and for integrators reading them.
  -- field_values is each run's scratch list of values (field_names[i] =
  -- field_values[i]), reused from record to record: the host reads it
  -- into the intent (ferry.intent) before the next run writes it again.
  local run = { field_names = {}, field_paths = {}, field_fns = {}, field_values = {}, owner = {},
                validate_names = {}, validate_rules = {}, validate_index = {} }
  local field_index = {}
  for i, k in ipairs(sorted_keys(m.fields)) do
    local src = m.fields[k]
    run.field_names[i] = k
    run.field_paths[i] = type(src) == "string" and src or false
    run.field_fns[i] = type(src) == "function" and src or false
    field_index[k] = i
  end
  for i, k in ipairs(sorted_keys(m.validate)) do
    run.validate_names[i] = k
    run.validate_rules[i] = m.validate[k]
    run.validate_index[i] = field_index[k]
  end
  -- An update with no fields and no match rules can change nothing: the
  -- mapping is its rules (commerce.rules_only), and its own intent, which
  -- the pipeline would only skip ("no record to update"), is not made.
  run.idle = m.op == "update" and #run.field_names == 0 and #m.match == 0
  m.run = run
  -- What every intent of this mapping repeats, converted to JSON once here
  -- and shared by the host's intents, instead of converted per record.
  m.head = intent_head { op = m.op, mapping = m.name,
                         source = { system = m.source.system, object = m.source.object },
                         target = m.target, owner = m.owner, link_from = m.link_from }
  m.rule_head = intent_head { mapping = m.name,
                              source = { system = m.source.system, object = m.source.object } }
  return m
end

local function resolve(src, record, ctx)
  if type(src) == "string" then
    return get(record, src)
  end
  return src(record, ctx)
end

local function id_string(v, m)
  if math_type(v) == "float" and v == math_floor(v) and v >= -2^53 and v <= 2^53 then
    v = math_tointeger(v)
  end
  if type(v) == "number" or type(v) == "string" then
    return tostring(v)
  end
  fail(m.path, "the key of the record is a %s, not a string or number", type(v))
end

-- Runs mapping `m` on one record: a list of intents (empty when filtered out).
function engine.run(m, record, ctx, event, settings_gen)
  if ctx.event == nil then
    ctx.event = event
  end
  if ctx.mapping == nil then
    ctx.mapping = m.name
  end
  ctx.notes = nil
  -- Each mapping sees its own settings (mappings.settings.<name> in the config).
  if ctx.settings == nil and type(ctx.mapping_settings) == "table" then
    ctx.settings = ctx.mapping_settings[m.name]
  end
  ctx.mapping_settings = nil
  -- What the mapping derives from its settings, made again only when they
  -- change (the host's settings_gen; none: every run).
  if m.prepare then
    if settings_gen == nil or m.prepared_gen ~= settings_gen then
      m.prepared_gen = nil
      m.prepared = m.prepare(ctx.settings)
      m.prepared_gen = settings_gen
    end
    ctx.prepared = m.prepared
  end
  if m.filter and not m.filter(record, ctx) then
    return array {}
  end
  local id = resolve(m.key, record, ctx)
  if id == nil or id == null then
    fail(m.path, "the record has no key (%s)",
         type(m.key) == "string" and ("'" .. m.key .. "'") or "key function returned nil")
  end

  local run = m.run
  local names, paths, fns, values = run.field_names, run.field_paths, run.field_fns,
                                    run.field_values
  for i = 1, #names do
    local p = paths[i]
    if p then
      values[i] = get(record, p)
    else
      values[i] = fns[i](record, ctx)
    end
  end

  -- No match rules (a mapping of rules only): one empty list for all runs,
  -- which the conversion only reads.
  local rules = m.match
  local match = #rules == 0 and NO_MATCH or array {}
  for i = 1, #rules do
    local r = rules[i]
    if r.rule == "link" then
      match[#match + 1] = map.LINK
    else
      local v = resolve(r.value, record, ctx)
      if v ~= nil and v ~= null and v ~= "" then
        match[#match + 1] = { rule = "lookup", field = r.field, value = v,
                              where = map.where_values(r.where, record, ctx) }
      end
    end
  end

  local vnames, vrules, vindex = run.validate_names, run.validate_rules, run.validate_index
  for i = 1, #vnames do
    local name, rule = vnames[i], vrules[i]
    local v = values[vindex[i]]
    if v == nil then
      if rule.required then
        fail(m.path, "validate: %s is required but the record gives none", name)
      end
    else
      if rule.max_length and type(v) == "string" and utf8_len(v) and utf8_len(v) > rule.max_length then
        fail(m.path, "validate: %s is %d characters, more than %d", name, utf8_len(v),
             rule.max_length)
      end
      if rule.format and not FORMATS[rule.format](v) then
        fail(m.path, "validate: %s is not a valid %s: %s", name, rule.format, tostring(v))
      end
      if rule.pattern and (type(v) ~= "string" or not v:find(rule.pattern)) then
        fail(m.path, "validate: %s does not match %s: %s", name, rule.pattern, tostring(v))
      end
    end
  end

  -- The policy can be chosen per deployment (mappings.settings.<name>.conflict)
  -- without editing the mapping; the mapping's table stays the default.
  local conflict
  local c = m.conflict
  local override = type(ctx.settings) == "table" and ctx.settings.conflict or nil
  if c or override then
    c = c or { fields = {} }
    local policy = c.policy or "source"
    if override ~= nil then
      if not POLICIES[override] then
        fail(m.path, "setting conflict must be one of source, target, newer, park, got %s",
             tostring(override))
      end
      policy = override
    end
    local fields = {}
    for k, v in pairs(c.fields) do
      fields[k] = v
    end
    conflict = { policy = policy, fields = fields, target_time = c.target_time }
    if c.source_time ~= nil then
      local t = resolve(c.source_time, record, ctx)
      if t ~= nil and t ~= null then
        conflict.source_time = t
      end
    end
  end

  local sid = id_string(id, m)
  -- The mapping's own intent is out[1], made last (ferry.intent): it takes
  -- the alternative and the notes the rules below may add. An idle one (see
  -- compile) is left out when it carries neither.
  local out = run.idle and array {} or array { false }

  -- What to create when the target refuses the write as not allowed (e.g.
  -- an opportunity in approval): a task for a person instead of a retry.
  local instead
  if m.instead then
    local alt = m.instead(record, ctx)
    if alt ~= nil then
      instead = map.finish_intent(alt, m, sid, event, "instead", 1, record, ctx)
    end
  end

  -- Rules add intents of their own (activities, updates of other records).
  -- Each one's source id is the record's id plus the rule's key, so that a
  -- retried or replayed job finds the activity it already created.
  local mrules = m.rules
  for r = 1, #mrules do
    local rule = mrules[r]
    local got = rule.fn(record, ctx)
    if got ~= nil then
      if type(got) ~= "table" then
        fail(m.path, "rules.%s must return an intent, a list of intents or nil", rule.name)
      end
      if got.op ~= nil then
        local at = #out + 1
        out[at] = map.finish_intent(got, m, sid, event, rule.name, 1, record, ctx, at)
      else
        for i = 1, #got do
          local at = #out + 1
          out[at] = map.finish_intent(got[i], m, sid, event, rule.name, i, record, ctx, at)
        end
      end
    end
  end
  -- Decisions helpers recorded while mapping (e.g. which rule chose an
  -- owner), for the job's audit.
  local notes
  if type(ctx.notes) == "table" and #ctx.notes > 0 then
    notes = array {}
    for i, n in ipairs(ctx.notes) do
      notes[i] = n
    end
  end

  if run.idle then
    if notes == nil and conflict == nil and instead == nil then
      return out
    end
    table_insert(out, 1, false)
  end
  -- The head holds op, mapping, the source's system and object, target,
  -- owner and link_from: the compiled mapping's own values.
  out[1] = intent(m.head, m.path, 1, sid, event, nil, nil, nil, match, nil, nil, conflict,
                  instead, notes, names, values)
  return out
end

return engine
