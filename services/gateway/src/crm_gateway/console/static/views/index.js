// Every view module of the console, one line each.
import * as customers from "./customers.js";
import * as marketingBuilder from "./marketingBuilder.js";
import * as marketing from "./marketing.js";
import * as marketingInsights from "./marketingInsights.js";
import * as marketingLoyalty from "./marketingLoyalty.js";

export const modules = [customers, marketingBuilder, marketing, marketingInsights, marketingLoyalty];
