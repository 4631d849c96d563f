// Offline mode of the data-plane worker: pcap in, rule table from JSON, pcap out (README.md).
export { forwardRecords, ingressFramer, ingressOf, readOfflineTable, runOffline, tableForwarder, type OfflineOptions, type OfflineSummary } from "./offline.js";
export { OfflineTableError, parseOfflineTable, type OfflineTable } from "./table.js";
export { describeFrame, traceFrames, type TraceStep } from "./trace.js";
