"""CRM campaigns: audiences, the care calendar, triggered journeys, message delivery and measured lift."""
