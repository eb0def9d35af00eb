// Every view module of the console, one line each.
import * as customers from "./customers.js";

export const modules = [customers];
