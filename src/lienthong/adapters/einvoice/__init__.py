"""E-invoice / e-receipt providers: VNPT (SOAP) and Viettel S-Invoice (REST)."""
