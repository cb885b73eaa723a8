-- SPDX-License-Identifier: MIT
--
-- Options of the contact_to_customer mapping (mappings.settings.contact_to_customer).
return {
  conflict = { type = "string", default = "source",
               desc = "a phone changed in both systems since the last sync: source (the CRM's "
                   .. "wins), target (the shop's stays), newer (the later change wins), park "
                   .. "(stop for a person); every case gets a conflict row" },
}
