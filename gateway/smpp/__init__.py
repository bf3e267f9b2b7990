"""SMPP 3.4: the PDU model, the codec, text encodings, segmentation and receipts."""
