#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Customers, B2B companies and registrations as CRM parties end to end
(issue 5, flows 1, 2 and 7), in the real daemon against both simulators.

- Flow 1: in a store with both kinds of buyer (customer_model "by_group"),
  a consumer becomes one IndividualCustomer (names, lower-cased e-mail, home
  address, RoleCode, a CustomerID from SAP) and a business buyer one
  Contact, never the other way round. The same event again writes nothing;
  a changed name is one PATCH of the same record.
- Flow 2: a company becomes a CorporateAccount; its user's contact (made by
  customer_to_contact from the customer webhook) gets the account's
  AccountID; its address becomes an address under the account
  (ParentObjectID). Each event again writes nothing.
- Flow 2, out of order: a user and an address whose company is not synced
  yet wait for it (references without a default) and are attached once it
  is, instead of being written without their account.
- Flow 7: a registration becomes one Lead with the person's and the
  company's details; the webhook again, and later changes of the customer,
  make no second lead and change nothing.

Needs C4C.edmx (the simulator then serves the real entity sets); skipped
(77) without it.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DEAD, DONE, REPO, FerryTestCase, Stack, lua_str, main  # noqa: E402

SKIP = 77
ENABLED = 'enabled = { "customer_to_contact" }'
RETRY = "retry = { max_attempts = 5, base_delay = 0.05, max_delay = 1 }"
SERVICE = "/sap/c4c/odata/v1/c4codataapi/"


def edmx_present():
    specs = os.environ.get("FERRY_SPECS") or os.path.join(REPO, "..", "shared", "specs")
    return os.path.isfile(os.path.join(specs, "sap", "c4c-odata-v2", "C4C.edmx"))


class AccountsStack(Stack):
    """The harness's stack with other mappings, their settings, the B2B API
    on the store simulator and, optionally, a longer retry budget."""

    def __init__(self, enabled, settings="", retry=None, **kw):
        self.enabled = enabled
        self.settings = settings
        self.retry = retry
        super().__init__(**kw)

    def write_config(self):
        super().write_config()
        with open(self.config_path, encoding="utf-8") as fh:
            text = fh.read()
        api_base = "api_base = %s," % lua_str(self.bc.api_base)
        for needle in (ENABLED, RETRY, api_base):
            if needle not in text:
                raise AssertionError("harness config changed shape (%s); update AccountsStack"
                                     % needle)
        enabled = "enabled = { %s }" % ", ".join('"%s"' % m for m in self.enabled)
        if self.settings:
            enabled += ", settings = { %s }" % self.settings
        text = text.replace(ENABLED, enabled)
        # B2B Edition's API is served by the same simulator under /api/v3/io.
        text = text.replace(api_base, "%s api_b2b_base = %s," % (api_base,
                                                                 lua_str(self.bc.base_url)))
        if self.retry:
            text = text.replace(RETRY, self.retry)
        with open(self.config_path, "w", encoding="utf-8") as fh:
            fh.write(text)


class FlowAccountsTest(FerryTestCase):
    def setUp(self):
        if not edmx_present():
            self.skipTest("no C4C.edmx under FERRY_SPECS")
        self.stack = None

    def use(self, enabled, settings="", retry=None):
        self.stack = AccountsStack(enabled, settings, retry, name=self.id().split(".")[-1])
        self.addCleanup(self.stack.close)
        return self.stack

    # -- what SAP received -------------------------------------------------------

    def writes(self, entity_set, method=None):
        path = SERVICE + entity_set
        return [r for r in self.stack.sap_requests()
                if r["method"] in ((method,) if method else ("POST", "PATCH", "PUT", "MERGE"))
                and r["path"].startswith(path)
                and r["path"][len(path):len(path) + 1] in ("", "(")]

    def all_writes(self):
        return [r for r in self.stack.sap_requests()
                if r["method"] in ("POST", "PATCH", "PUT", "MERGE", "DELETE")]

    def assert_all_done(self):
        jobs = self.stack.jobs()
        dead = [j for j in jobs if j["state"] == DEAD]
        self.assertEqual(dead, [], self.stack.dead_jobs_text())
        self.assertEqual([j["state"] for j in jobs], [DONE] * len(jobs), jobs)

    def settle(self, deliveries, jobs):
        self.stack.wait_deliveries(deliveries)
        self.stack.wait_drained(total=jobs)
        self.assert_all_done()

    # -- flow 1 -------------------------------------------------------------------

    def test_consumer_becomes_individual_customer_business_buyer_contact(self):
        groups = "customer_model = \"by_group\", b2c_customer_groups = { 2 }"
        s = self.use(("customer_to_contact", "customer_to_individual_customer"),
                     "customer_to_contact = { %s }, customer_to_individual_customer = { %s }"
                     % (groups, groups))
        s.start()
        s.register_hook("store/customer/*")
        consumer, _ = s.create_customers([
            {"email": "Lena.Ott@Example.com", "first_name": "Lena", "last_name": "Ott",
             "phone": "+49 89 5550101", "customer_group_id": 2,
             "addresses": [{"first_name": "Lena", "last_name": "Ott", "address1": "Work St 1",
                            "city": "Augsburg", "postal_code": "86150", "country_code": "DE",
                            "address_type": "commercial"},
                           {"first_name": "Lena", "last_name": "Ott",
                            "address1": "Isarweg 5", "city": "München", "postal_code": "80331",
                            "country_code": "DE", "address_type": "residential"}]},
            {"email": "jonas.weber@example.com", "first_name": "Jonas", "last_name": "Weber",
             "company": "Weber Bau GmbH", "customer_group_id": 1}])
        self.settle(2, 2)

        (person,) = s.sap.entities("IndividualCustomerCollection")
        self.assertEqual((person["FirstName"], person["LastName"], person["Email"]),
                         ("Lena", "Ott", "lena.ott@example.com"))
        self.assertEqual(person["Phone"], "+49 89 5550101")
        # The home address, not the first one.
        self.assertEqual((person["Street"], person["City"], person["StreetPostalCode"],
                          person["CountryCode"]), ("Isarweg 5", "München", "80331", "DE"))
        self.assertEqual(person["RoleCode"], "CRM000")
        self.assertTrue(person["CustomerID"], person)
        (contact,) = s.sap_contacts()
        self.assertEqual(contact["Email"], "jonas.weber@example.com")
        link = s.query("SELECT src_id, dst_id FROM links WHERE dst_object = "
                       "'IndividualCustomerCollection'")
        self.assertEqual(link, [{"src_id": str(consumer["id"]), "dst_id": person["ObjectID"]}])

        # The same event under another hash: a second job, which finds the link.
        writes = len(self.all_writes())
        s.bc.fire("store/customer/created", {"type": "customer", "id": consumer["id"],
                                             "again": True})
        self.settle(3, 3)
        self.assertEqual(len(self.all_writes()), writes, self.all_writes()[writes:])
        self.assertEqual(len(s.sap.entities("IndividualCustomerCollection")), 1)

        # A change is one PATCH of the same individual customer.
        s.update_customer(consumer["id"], last_name="Ott-Berg")
        self.settle(4, 4)
        patches = self.writes("IndividualCustomerCollection", "PATCH")
        self.assertEqual(len(patches), 1, patches)
        self.assertEqual(patches[0]["path"], SERVICE + "IndividualCustomerCollection('%s')"
                         % person["ObjectID"])
        (person,) = s.sap.entities("IndividualCustomerCollection")
        self.assertEqual(person["LastName"], "Ott-Berg")
        self.assertEqual(len(self.writes("IndividualCustomerCollection", "POST")), 1)
        self.assertEqual(len(s.sap_contacts()), 1)

    # -- flow 2 -------------------------------------------------------------------

    FLOW2 = ("customer_to_contact", "company_to_account", "company_user_to_contact",
             "company_address_to_account_address")

    def company_fields(self):
        return {"companyName": "Keller Werkzeuge GmbH", "companyEmail": "Info@Keller-Werkzeuge.de",
                "companyPhone": "+49 30 1234500", "addressLine1": "Hauptstr. 5",
                "addressLine2": "Aufgang B", "city": "Berlin", "zipCode": "10115",
                "country": "DE", "state": "Berlin", "companyStatus": "1"}

    def assert_attached(self, account, contact_email, address_id):
        s = self.stack
        contact = [c for c in s.sap_contacts() if c["Email"] == contact_email]
        self.assertEqual(len(contact), 1, s.sap_contacts())
        self.assertEqual(contact[0]["AccountID"], account["AccountID"])
        (address,) = s.sap.entities("CorporateAccountAddressCollection")
        self.assertEqual(address["ParentObjectID"], account["ObjectID"])
        self.assertEqual(s.query("SELECT dst_id FROM links WHERE src_object = 'company_address'"
                                 " AND src_id = ?", (str(address_id),)),
                         [{"dst_id": address["ObjectID"]}])
        return contact[0], address

    def test_company_account_with_its_contact_and_address(self):
        s = self.use(self.FLOW2)
        s.start()
        s.register_hook("store/customer/*")
        s.register_hook("store/company/*")
        (cust,) = s.create_customers([{"email": "marta.keller@example.com",
                                       "first_name": "Marta", "last_name": "Keller"}])
        s.wait_for(lambda: len(s.sap_contacts()) == 1, 30, "the customer's contact")
        company = s.bc.upsert_company(**self.company_fields())
        s.wait_for(lambda: s.sap.entities("CorporateAccountCollection"), 30, "the account")
        user = s.bc.upsert_company_user(company, cust["id"], lastName="Keller-Braun",
                                        phoneNumber="+49 30 1234567")
        address = s.bc.upsert_company_address(company, addressLine2="Lager 2",
                                              isBilling=False, isDefaultBilling=False)
        self.settle(4, 4)

        (account,) = s.sap.entities("CorporateAccountCollection")
        self.assertEqual((account["Name"], account["Email"], account["Phone"]),
                         ("Keller Werkzeuge GmbH", "info@keller-werkzeuge.de", "+49 30 1234500"))
        self.assertEqual((account["Street"], account["AddressLine4"], account["City"],
                          account["StreetPostalCode"], account["CountryCode"]),
                         ("Hauptstr. 5", "Aufgang B", "Berlin", "10115", "DE"))
        self.assertEqual((account["RoleCode"], account["LifeCycleStatusCode"]), ("CRM000", "2"))
        self.assertTrue(account["AccountID"], account)

        contact, addr = self.assert_attached(account, "marta.keller@example.com", address)
        # The user's own record updates the contact; the phone belongs to the
        # CRM (owner table) and an update-only mapping never seeds it.
        self.assertEqual((contact["FirstName"], contact["LastName"]), ("Marta", "Keller-Braun"))
        self.assertIsNone(contact["Phone"])
        self.assertEqual(len(s.sap_contacts()), 1)   # the user's contact is the customer's
        self.assertEqual((addr["Street"], addr["AddressLine4"], addr["City"],
                          addr["StreetPostalCode"], addr["CountryCode"], addr["Phone"]),
                         ("512 Bluebonnet Lane", "Lager 2", "Austin", "78704", "US",
                          "512-200-1234"))
        self.assertEqual((addr["ShipTo"], addr["BillTo"], addr["DefaultShipTo"],
                          addr["DefaultBillTo"]), (True, False, True, False))

        # Each event once more under another hash: three jobs, no write.
        writes = len(self.all_writes())
        s.bc.fire("store/company/updated", {"company_id": company, "again": True})
        s.bc.fire("store/company/user/updated", {"company_id": company, "user_id": user,
                                                 "again": True})
        s.bc.fire("store/company/address/updated", {"company_id": company,
                                                    "address_id": address, "again": True})
        self.settle(7, 7)
        self.assertEqual(self.all_writes()[writes:], [])
        self.assertEqual(len(s.sap.entities("CorporateAccountCollection")), 1)
        self.assertEqual(len(s.sap.entities("CorporateAccountAddressCollection")), 1)

        # The company approved -> inactive is a PATCH of the same account.
        s.bc.upsert_company(company, companyStatus="3")
        self.settle(9, 9)
        (account2,) = s.sap.entities("CorporateAccountCollection")
        self.assertEqual((account2["ObjectID"], account2["LifeCycleStatusCode"]),
                         (account["ObjectID"], "3"))

    def test_user_and_address_wait_for_their_company(self):
        """Webhooks out of order: the company's account is not in SAP when its
        user and address arrive. Both wait (retried) and are attached once it
        is, rather than a contact without its account or an orphan address."""
        s = self.use(self.FLOW2,
                     retry="retry = { max_attempts = 60, base_delay = 0.05, max_delay = 0.25 }")
        s.start()
        s.register_hook("store/customer/*")
        s.register_hook("store/company/user/*")
        s.register_hook("store/company/address/*")
        (cust,) = s.create_customers([{"email": "jonas.weber@example.com",
                                       "first_name": "Jonas", "last_name": "Weber"}])
        s.wait_for(lambda: len(s.sap_contacts()) == 1, 30, "the customer's contact")
        company = s.bc.upsert_company(**self.company_fields())   # no hook for it yet
        s.bc.upsert_company_user(company, cust["id"])
        address = s.bc.upsert_company_address(company)
        s.wait_deliveries(3)

        def waiting():
            return len([j for j in s.jobs() if j["state"] != DONE and j["last_error"]
                        and "waiting for it to sync" in j["last_error"]]) == 2
        s.wait_for(waiting, 30, "the user's and the address's jobs to wait for the company")
        self.assertEqual(s.sap.entities("CorporateAccountAddressCollection"), [])
        self.assertIsNone(s.sap_contacts()[0]["AccountID"])

        s.register_hook("store/company/*")
        s.bc.upsert_company(company, companyPhone="+49 30 1234599")
        self.settle(4, 4)
        (account,) = s.sap.entities("CorporateAccountCollection")
        self.assert_attached(account, "jonas.weber@example.com", address)

    # -- flow 7 -------------------------------------------------------------------

    def test_registration_becomes_one_lead(self):
        s = self.use(("customer_to_contact", "registration_to_lead"))
        s.start()
        s.register_hook("store/customer/*")
        (cust,) = s.create_customers([{
            "email": " Marta.Keller@Example.com", "first_name": "Marta", "last_name": "Keller",
            "company": "Keller Werkzeuge GmbH", "phone": "+49 30 1234567",
            "addresses": [{"first_name": "Marta", "last_name": "Keller",
                           "address1": "Hauptstr. 5", "city": "Berlin", "postal_code": "10115",
                           "country_code": "DE", "address_type": "commercial"}]}])
        self.settle(1, 1)

        (lead,) = s.sap.entities("LeadCollection")
        self.assertEqual(lead["Name"], "Web registration: Marta Keller, Keller Werkzeuge GmbH")
        self.assertEqual((lead["ContactFirstName"], lead["ContactLastName"],
                          lead["ContactEMail"], lead["ContactPhone"]),
                         ("Marta", "Keller", "marta.keller@example.com", "+49 30 1234567"))
        self.assertEqual((lead["Company"], lead["AccountCity"], lead["AccountCountry"]),
                         ("Keller Werkzeuge GmbH", "Berlin", "DE"))
        self.assertEqual(len(s.sap_contacts()), 1)   # the contact next to it
        self.assertEqual(s.query("SELECT src_id, dst_id FROM links WHERE dst_object = "
                                 "'LeadCollection'"),
                         [{"src_id": str(cust["id"]), "dst_id": lead["ObjectID"]}])

        # The registration again (another hash: a second job) finds the lead.
        writes = len(self.all_writes())
        s.bc.fire("store/customer/created", {"type": "customer", "id": cust["id"],
                                             "again": True})
        self.settle(2, 2)
        self.assertEqual(self.all_writes()[writes:], [])
        # A later change is the contact's business, not a new or changed lead.
        s.update_customer(cust["id"], phone="+49 30 7654321")
        self.settle(3, 3)
        self.assertEqual(self.writes("LeadCollection"), self.writes("LeadCollection", "POST"))
        self.assertEqual(len(self.writes("LeadCollection")), 1)
        (lead2,) = s.sap.entities("LeadCollection")
        self.assertEqual(json.dumps(lead2, sort_keys=True), json.dumps(lead, sort_keys=True))

    def test_converted_lead_links_its_customer_to_the_contact(self):
        """Sales convert the lead in the CRM into a contact (with an e-mail of
        their own); lead_to_contact links the shop customer to it, and the
        customer's next change updates that contact instead of making one."""
        s = self.use(("customer_to_contact", "registration_to_lead", "lead_to_contact"),
                     settings='customer_to_contact = { customer_model = "by_group",'
                              ' b2c_customer_groups = { 2 } }')
        sap_password = 'password = env("FERRY_TEST_SAP_PASSWORD") },'
        with open(s.config_path, encoding="utf-8") as fh:
            text = fh.read()
        self.assertIn(sap_password, text)
        with open(s.config_path, "w", encoding="utf-8") as fh:
            # The polls below follow the CRM's edit within SAP's settle time.
            fh.write(text.replace(sap_password, sap_password[:-3] + ", delta_lag = 0 },"))
        s.start()
        s.register_hook("store/customer/*")
        (cust,) = s.create_customers([{"email": "marta.keller@example.com", "first_name": "Marta",
                                       "last_name": "Keller", "customer_group_id": 2}])
        self.settle(1, 1)
        (lead,) = s.sap.entities("LeadCollection")
        self.assertEqual(s.sap_contacts(), [])       # a consumer in group 2: a lead only
        self.assertEqual(s.stop(), 0)

        # Sales qualify the lead and convert it into a contact of their own.
        contact = s.sap._create({"FirstName": "Marta", "LastName": "Keller",
                                 "Email": "m.keller@keller-werkzeuge.de"}, "CRM_USER")
        s.sap.modify_entity("LeadCollection", lead["ObjectID"],
                            {"ContactID": contact["ContactID"], "LifeCycleStatusCode": "4"})
        rc, out = s.sync_once()
        self.assertEqual(rc, 0, out)
        self.assertEqual(s.query("SELECT dst_id FROM links WHERE src_object = 'customer'"
                                 " AND src_id = ? AND dst_object = 'ContactCollection'",
                                 (str(cust["id"]),)),
                         [{"dst_id": contact["ObjectID"]}])
        self.assertTrue(s.query("SELECT 1 FROM audit WHERE step = 'link' AND detail LIKE"
                                " '%linked to ContactCollection%'"))

        # The customer becomes a business buyer: the converted contact is updated.
        s.update_customer(cust["id"], customer_group_id=1, last_name="Keller-Braun")
        rc, out = s.sync_once()
        self.assertEqual(rc, 0, out)
        (now,) = s.sap_contacts()
        self.assertEqual(now["ObjectID"], contact["ObjectID"])
        self.assertEqual((now["LastName"], now["Email"]),
                         ("Keller-Braun", "marta.keller@example.com"))
        self.assertEqual(self.writes("ContactCollection", "POST"), [])


if __name__ == "__main__":
    if not edmx_present():
        print("SKIP: no C4C.edmx under FERRY_SPECS; these flows need SAP's account, individual "
              "customer, address and lead sets")
        sys.exit(SKIP)
    main()
