"""The demo service agreement: the portal's own wording, written for the demo."""

DEMO_AGREEMENT_TITLE = "Balance and Top-up Terms (demo)"

DEMO_AGREEMENT_BODY = """\
1. What these terms cover
These terms govern the prepaid balance you keep with us to pay for model API
calls: how money gets in, how it is used, and how unused money comes back.

2. Your balance account
Every registered account has one balance account. It holds the cash you paid
in, any trial funds we granted you, and any promotional discounts you earned.
A balance cannot be moved to another account.

3. Before your first top-up
You must be an adult able to enter contracts on your own (or aged 16 or more
and living on your own income, which our staff will check), and your account
must have passed real-name verification. One identity can hold one verified
account.

4. Paying in
You can pay in through the online payment channel or by bank transfer to the
account shown on the top-up page. A transfer is credited once we can match it
to your account. Top-ups in the name of someone else may be held for checks.

5. Trial funds and discounts
Trial funds are a one-time welcome grant per identity and expire after the
period shown when granted. Discounts are tied to the top-up that earned them.
Neither can be refunded or invoiced.

6. Using your balance
Each API call is priced per use and paid from your balance: discounts first,
then trial funds, then cash. Prices in fractions of a fen are kept exactly.

7. Refunds
You can ask for the unused cash of a top-up back, once per top-up. It is paid
to the account it came from after review.

8. Invoices
You can ask for an invoice for cash you have actually used.

9. When we may restrict an account
We may suspend an account that breaks these terms, lock it while a payment
dispute is open, or freeze it when an authority orders us to. We tell you why.

10. Your personal data
Your ID number and documents are stored encrypted and shown to staff only in
masked form, except to the few who need the full data, and each such look is
recorded.

11. Changes to these terms
We announce a new version before it takes effect. Top-ups after that date
need your acceptance of the new version.
"""
