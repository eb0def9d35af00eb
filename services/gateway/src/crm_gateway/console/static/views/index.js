// Every view module of the console, one line each. Order matters where paths overlap: the first
// route that matches wins (the campaign builder's /campaigns/new before /campaigns/:campaign_id).
import * as customers from "./customers.js";
import * as customer360 from "./customer360.js";
import * as customer360Actions from "./customer360-actions.js";
import * as tickets from "./tickets.js";
import * as marketingBuilder from "./marketingBuilder.js";
import * as marketing from "./marketing.js";
import * as marketingInsights from "./marketingInsights.js";
import * as marketingLoyalty from "./marketingLoyalty.js";
import * as supervisionReports from "./supervision_reports.js";
import * as supervisionApprovals from "./supervision_approvals.js";
import * as supervisionSettings from "./supervision_settings.js";

export const modules = [customers, customer360, customer360Actions, tickets, marketingBuilder, marketing,
                        marketingInsights, marketingLoyalty, supervisionReports, supervisionApprovals,
                        supervisionSettings];
