-- SPDX-License-Identifier: MIT
-- ferry init: off (needs settings or overlaps another mapping; see below)
--
-- A BigCommerce order becomes an SAP Sales Cloud sales order
-- (CustomerOrderCollection; C4C has no SalesOrderCollection) with its items,
-- so that the account's order history is in the CRM.
--
-- What is written, and why this mapping is built from rules:
-- - The items go in the same request as the header (a deep insert of
--   CustomerOrderItem): an item needs its order's ObjectID otherwise, which a
--   mapping cannot know. The load-time check of mapped fields knows only
--   properties, not navigation properties, so a deep insert cannot be a
--   top-level field; the order is therefore written by the `sales_order`
--   rule (same link-per-record semantics as a mapping's own intent; its
--   fields are checked against C4C.edmx by tests/e2e/test_flow_rule_fields.py).
-- - Items are set on create only (owner = sap_sales): OData v2 has no deep
--   update, so later changes of the lines are not sent. Syncing them needs
--   the core to write items as their own records under a parent reference.
-- - BuyerPartyID is mandatory: the buyer's account (B2B: the AccountID of
--   the customer's contact; B2C: the individual customer), a reference
--   (commerce.ref) resolved when the order is written. When the buyer has
--   none (not synced yet, or a contact without an account) the configured
--   default_buyer_party_id is used (e.g. a one-time-customer account);
--   without one the job waits for the buyer ("waiting for it to sync", with
--   backoff, then the dead-letter queue) instead of guessing.
--   BuyerContactPartyID (B2B) is the contact itself and left out when there
--   is none; EmployeeResponsiblePartyID is inherited from the buyer's owner
--   before the other owner rules.
-- - A guest order (customer_id 0) has its buyer in billing_address.email:
--   the `buyer` rule finds the person by that e-mail before it ever creates
--   one, so repeat guests do not multiply.
-- - Status: status_id through the settings table status_codes into
--   OrderExternalLifeCycleStatusCode (the codes are the tenant's own; with
--   no table the status is not sent).
-- - The sales order is found again by BuyerID ("BC-<order id>"), the
--   customer-reference field SAP offers for external order numbers.

local map = require "ferry.map"
local commerce = require "ferry.commerce"
local owner = require "ferry.owner"

local ORDERS = { "sap_sales", "CustomerOrderCollection" }
-- The CRM's users own the responsible employee; the lines are written with
-- the create only (no deep update in OData v2). The same for every order.
local ORDER_OWNED = map.fixed { EmployeeResponsiblePartyID = "sap_sales",
                                CustomerOrderItem = "sap_sales" }

local text, null = ferry.text, ferry.null
local type, ipairs, tostring = type, ipairs, tostring
-- Incomplete orders (status 0) when skip_status_ids is not set.
local SKIP_STATUS_IDS = { 0 }

local function buyer_email(order)
  return commerce.email(map.get(order, "billing_address.email"))
end

-- customer_id 0 (or none) is a guest. Read directly, as this runs for every
-- order in the filter's wake and in both rules: "", null and absent are 0,
-- and text is trimmed as commerce.id would.
local function is_guest(order)
  local c = order.customer_id
  if c == nil or c == null or c == "" or c == 0 then
    return true
  end
  return type(c) == "string" and text(c) == "0"
end

-- The person set and the property that is a party ID there, per model.
local function person(model)
  if model == "b2c" then
    return "IndividualCustomerCollection", "CustomerID"
  end
  return "ContactCollection", "ContactID"
end

-- A reference to the buyer's record (the person's `prop`), or `default`.
-- guest: whether the order is a guest's (is_guest); p: the prepared settings
-- with the person set of the model (p.set, p.id_prop).
local function buyer_ref(order, ctx, guest, p, prop, default)
  if guest then
    return commerce.ref(ctx, { lookup = { target = p.set, field = "Email", value = buyer_email(order) },
                               property = prop, default = default })
  end
  return commerce.ref_to(ctx, "customer", order.customer_id, p.set, prop, default)
end

-- The buyer's account party: a reference to the buyer's record, else the
-- configured default.
local function buyer_party(order, ctx, guest, p)
  -- B2B orders are bought by the contact's account, B2C by the person.
  local prop = p.set == "ContactCollection" and "AccountID" or p.id_prop
  return buyer_ref(order, ctx, guest, p, prop, p.default_buyer_party_id)
end

local function buyer_contact(order, ctx, guest, p)
  if p.set ~= "ContactCollection" then
    return nil
  end
  return buyer_ref(order, ctx, guest, p, p.id_prop, ferry.null)
end

-- The responsible employee (settings `owner`): the buyer's own owner when
-- references work, else territory of the billing address, team, fallback.
local function responsible(order, ctx, id, guest, p)
  if not p.owned then
    return nil
  end
  return (owner.pick(ctx, "CustomerOrderCollection", function()
    local where = { id = id, place = function()
      return commerce.place(order.billing_address)
    end }
    if not guest then
      where.inherit = { object = "customer", id = map.get(order, "customer_id"), target = p.set,
                        property = p.set == "ContactCollection" and "ContactOwnerID" or "OwnerID" }
    end
    return where
  end))
end

-- The item lines, declared for the settings' choices (product_id: sku or
-- product_id; prices with or without tax) in prepare, and evaluated by the
-- host on the order's JSON (ferry.rows, from the order's `products`, the
-- lines as the connector delivers them): a line that is not an object reads
-- as one without fields, and a list without lines gives nil.
local function line_rows(product_id, with_tax)
  local pid
  if product_id == "sku" then
    pid = { "sku", "text" }
  elseif product_id == "product_id" then
    pid = { "product_id", "id" }
  end
  return ferry.rows({
    ID = { index = 10 },                                          -- String(10), 10, 20, ...
    ProductID = pid,                                              -- String(60)
    -- Description is 40 characters; the product is identified by
    -- ProductID, so a long name is shortened here, visibly.
    Description = { "name", "text", cut = 40 },
    Quantity = { "quantity", "quantity" },
    QuantityMeasureUnitCode = { arg = 1 },
    NetPriceAmount = { with_tax and "price_inc_tax" or "price_ex_tax", "decimal" },
    NetPriceAmountCurrencyCode = { arg = 2, when = "NetPriceAmount" },
  }, "products")
end

local function items(order, p, currency)
  local rows, listed = p.lines(order, p.unit_code, currency)
  if not listed then
    -- The v2 link object instead of the lines (commerce.order_lines).
    error("order " .. tostring(order.id) .. " carries no product lines (a poll with "
          .. "order_details_in_poll = false?): the sales order needs its items")
  end
  return rows
end

-- What the rules need of the settings, read once for all records with the
-- same settings (the mapping's `prepare`).
local function prepare(settings)
  local ctx = { settings = settings }
  local function setting(name, default)
    return commerce.setting(ctx, name, default)
  end
  local p = {
    default_buyer_party_id = setting("default_buyer_party_id", nil),
    status_codes = setting("status_codes", {}),
    buyer_id_prefix = setting("buyer_id_prefix", "BC-"),
    name_prefix = setting("name_prefix", "BigCommerce order "),
    processing_type_code = setting("processing_type_code", nil),
    sales_organisation_id = setting("sales_organisation_id", nil),
    distribution_channel_code = setting("distribution_channel_code", nil),
    division_code = setting("division_code", nil),
    role_code = setting("role_code", "CRM000"),
    unit_code = setting("unit_code", "EA"),
    lines = line_rows(setting("product_id", "sku"), setting("prices_include_tax", false)),
    -- The status ids not to sync, as the ids commerce.id makes of them.
    skip = {},
  }
  p.set, p.id_prop = person(setting("customer_model", "b2b"))
  -- Without owner rules for sales orders there is no responsible employee to pick.
  p.owned = owner.configured(settings, "CustomerOrderCollection")
  for _, s in ipairs(setting("skip_status_ids", SKIP_STATUS_IDS)) do
    local sid = commerce.id(s)
    if sid ~= nil then
      p.skip[sid] = true
    end
  end
  return p
end

return commerce.rules_only {
  description = "BigCommerce order -> SAP Sales Cloud sales order with items (and the guest buyer)",
  source = { "bigcommerce", "order", on = { "created", "updated", "status_changed", "converted" } },
  target = ORDERS,
  -- Incomplete orders (status 0, a checkout that never finished) are not
  -- sales; the connector drops them already unless configured otherwise.
  prepare = prepare,
  filter = function(order, ctx)
    local status = commerce.id(order.status_id)
    return status == nil or not ctx.prepared.skip[status]
  end,
  rules = {
    -- A guest's person, matched by the billing e-mail before any create.
    -- Runs before sales_order (rules run in name order), so that a resolved
    -- buyer reference can find a person created in the same job.
    buyer = function(order, ctx)
      if not is_guest(order) then
        return nil
      end
      local email = buyer_email(order)
      if email == nil then
        return nil
      end
      local p = ctx.prepared
      local set = p.set
      local b = type(order.billing_address) == "table" and order.billing_address or {}
      local country, region = commerce.place(b)
      local fields = {
        FirstName = commerce.text(map.get(b, "first_name")),
        LastName = commerce.text(map.get(b, "last_name")) or email,
        Email = email,
        Phone = commerce.text(map.get(b, "phone")),
      }
      local own = owner.pick(ctx, set, { id = email, country = country, region = region })
      local owned = { Phone = "sap_sales" }
      if set == "IndividualCustomerCollection" then
        owned.RoleCode, owned.OwnerID = "sap_sales", "sap_sales"
        fields.Street = commerce.text(map.get(b, "street_1"))
        fields.City = commerce.text(map.get(b, "city"))
        fields.StreetPostalCode = commerce.text(map.get(b, "zip"))
        fields.CountryCode = country
        fields.RoleCode = p.role_code
        fields.OwnerID = own
      else
        fields.BusinessAddressStreet = commerce.text(map.get(b, "street_1"))
        fields.BusinessAddressCity = commerce.text(map.get(b, "city"))
        fields.BusinessAddressStreetPostalCode = commerce.text(map.get(b, "zip"))
        fields.BusinessAddressCountryCode = country
        fields.ContactOwnerID = own
        owned.ContactOwnerID = "sap_sales"
      end
      return map.activity {
        target = { "sap_sales", set },
        key = "buyer",
        match = { "link", map.lookup_value("Email", email) },
        fields = fields,
        owner = owned,
      }
    end,

    sales_order = function(order, ctx)
      local id = commerce.id(order.id)
      local p = ctx.prepared
      local guest = is_guest(order)
      local party = buyer_party(order, ctx, guest, p)
      if party == nil then
        error("order " .. id .. ": no buyer party for the sales order: set "
              .. "default_buyer_party_id (the order names no buyer to refer to)")
      end
      local status = nil
      local codes = p.status_codes
      if type(codes) == "table" then
        status = codes[commerce.id(order.status_id)]
      end
      local buyer_id = p.buyer_id_prefix .. id
      local currency = commerce.currency(order)
      return map.activity {
        target = ORDERS,
        key = "sales-order",
        match = { "link", map.lookup_value("BuyerID", buyer_id) },
        fields = {
          BuyerID = buyer_id,                                         -- String(35)
          Name = p.name_prefix .. id, -- String(255)
          DateTime = commerce.iso(commerce.time(order.date_created)),
          CurrencyCode = currency,
          BuyerPartyID = party,                                       -- String(60), mandatory
          BuyerContactPartyID = buyer_contact(order, ctx, guest, p),  -- String(60)
          OrderExternalLifeCycleStatusCode = status,                  -- String(2)
          ProcessingTypeCode = p.processing_type_code,
          SalesOrganisationID = p.sales_organisation_id,
          DistributionChannelCode = p.distribution_channel_code,
          DivisionCode = p.division_code,
          EmployeeResponsiblePartyID = responsible(order, ctx, id, guest, p), -- String(60)
          CustomerOrderItem = items(order, p, currency),
        },
        owner = ORDER_OWNED,
      }
    end,
  },
}
