"""Infrastructure every CRM service shares. No business rules live here."""
