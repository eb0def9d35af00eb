"""CRM gateway: The one public entry for storefront and call-centre apps."""
