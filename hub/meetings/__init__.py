"""Meetings a council convenes with the police: strategy discussions and child protection
conferences (pre-birth among them), the invited forces' answers and reports, and who attended."""
