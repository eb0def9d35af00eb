// Every view module of the console, one line each.
import * as customers from "./customers.js";
import * as customer360 from "./customer360.js";
import * as customer360Actions from "./customer360-actions.js";
import * as tickets from "./tickets.js";

export const modules = [customers, customer360, customer360Actions, tickets];
