// Every view module of the console, one line each.
import * as customers from "./customers.js";
import * as tickets from "./tickets.js";

export const modules = [customers, tickets];
