"""Invoice services (SPEC §8), one module per write area; each public function is one
transaction.

    filing   submit a request (title, kind, amount reserved under the account's lock),
             title proof files, reading them
    issuing  issue (the tax platform's PDF/OFD/XML, checked), reject, reverse
             (red-letter), serving the files; InvoiceRequest's transition map

Admin and views only parse input and call these. No money moves: an invoice only
records which consumed cash it covers. Notices only through send_notice.

Importing this package imports every module, so core's autodiscovery of
`invoices.services` registers InvoiceRequest's transition map.
"""

from . import filing, issuing  # noqa: F401 (imported to register the map)
