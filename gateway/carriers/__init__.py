"""Carrier links: the SMPP binds of one carrier, its dispatcher, receipts and inbound messages."""
