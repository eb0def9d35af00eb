// Every view module of the console, one line each.
import * as customers from "./customers.js";
import * as supervisionReports from "./supervision_reports.js";
import * as supervisionApprovals from "./supervision_approvals.js";
import * as supervisionSettings from "./supervision_settings.js";

export const modules = [customers, supervisionReports, supervisionApprovals, supervisionSettings];
