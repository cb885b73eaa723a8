/* SPDX-License-Identifier: MIT */
/*
 * ferry.rows(spec): fields of a list's rows declared once, when the mapping
 * loads, and evaluated by the host on the record's JSON, for the lists a
 * mapping writes per element (an order's lines as a document's items).
 *
 *   local LINE = ferry.rows {
 *     ID = { index = 10 },                   -- "10", "20", ... by position
 *     ProductID = { "sku", "text" },         -- path in the row, normal form
 *     Description = { "name", "text", cut = 40 },
 *     Unit = { arg = 1 },                    -- the call's first argument
 *     Currency = { arg = 2, when = "Price" },-- only in rows that have Price
 *     Price = { "price_ex_tax", "decimal" },
 *   }
 *   fields.Items = LINE(order.products, "EA", currency)
 *
 * Forms are ferry.text, decimal, quantity and id (raw: the value as the
 * record has it); a path follows ferry.get's rules, and a value that is
 * missing, JSON null or "" leaves its field out, as does a form's nil. An
 * element that is not an object is a row without record fields. The result
 * is the array as a host-built value (an intent takes it by reference), or
 * nil when the list is nil or empty. docs/mappings.md has the reference.
 */
#ifndef FERRY_ROWS_H
#define FERRY_ROWS_H

#include <lua.h>

/* [-0, +0, e] adds rows to the table at the top of the stack (the `ferry` table). */
void ferry__lua_rows_register(lua_State *L);

#endif
