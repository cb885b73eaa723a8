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
local is_array = ferry.is_array

local map = {}

-- The value at `path` in `record`, or nil when any step is missing or empty.
-- A numeric step indexes an array (1-based, as Lua); otherwise it is a key.
function map.get(record, path)
  local v = record
  for step in string.gmatch(path, "[^.]+") do
    if type(v) ~= "table" then
      return nil
    end
    if is_array(v) and step:match("^%d+$") then
      v = v[tonumber(step)]
    else
      v = v[step]
    end
  end
  if v == null or v == "" then
    return nil
  end
  return v
end

local function source(src, who, level)
  if type(src) == "string" then
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
  local i, j = 1, #s
  while i <= j and is_blank(s:byte(i)) do
    i = i + 1
  end
  while j >= i and is_blank(s:byte(j)) do
    j = j - 1
  end
  return s:sub(i, j)
end)

-- map.first(a, b, ...): the first source that is not empty.
function map.first(...)
  local fs = {}
  for i = 1, select("#", ...) do
    fs[i] = source(select(i, ...), "map.first", 2)
  end
  return function(record, ctx)
    for _, f in ipairs(fs) do
      local v = f(record, ctx)
      if v ~= nil and v ~= null and v ~= "" then
        return v
      end
    end
    return nil
  end
end

-- map.lookup(field, src): a match rule: find the target record whose `field`
-- equals the value of `src`. Skipped when that value is empty.
function map.lookup(field, src)
  if type(field) ~= "string" or field == "" then
    error("map.lookup: expected a target field name, got " .. type(field), 2)
  end
  return { rule = "lookup", field = field, value = source(src, "map.lookup", 2) }
end

return map
