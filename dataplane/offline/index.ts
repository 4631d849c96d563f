// Offline mode of the data-plane worker: pcap in, rule table from JSON, pcap out (README.md).
export { forwardRecords, runOffline, type OfflineOptions, type OfflineSummary } from "./offline.js";
export { OfflineTableError, parseOfflineTable, type OfflineTable } from "./table.js";
