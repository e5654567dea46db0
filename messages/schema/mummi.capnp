# Wire format of every message that crosses a process boundary in mummi.
#
# Rules: fields are only ever appended (never renumbered or removed); a change that an older
# reader cannot ignore bumps `protocolVersion` below. Physical quantities carry their unit in
# the field name (Nm = nanometres, Ps = picoseconds, KjMol = kJ/mol).
@0xf99cd647ba29adc6;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("mummi::wire");

const protocolVersion :UInt16 = 1;

struct Address {
  node @0 :Text;   # node id ("head", "node-0003", ...)
  actor @1 :Text;  # actor name registered with that node's gateway
}

struct KeyValue {
  key @0 :Text;
  value @1 :Text;
}

enum EnvelopeKind {
  oneway @0;
  request @1;
  response @2;
  publish @3;     # event on a topic, sent to every subscriber
  subscribe @4;   # ask the receiving gateway for the events of `topic`
  unsubscribe @5;
}

struct Envelope {
  version @0 :UInt16;
  kind @1 :EnvelopeKind;
  correlationId @2 :UInt64;  # matches a response to its request; 0 for one-way messages
  from @3 :Address;
  to @4 :Address;
  topic @5 :Text;            # publish/subscribe only
  body :union {
    none @6 :Void;           # gateway-level envelopes (subscribe) carry no body
    nodeHello @7 :NodeHello;
    nodeWelcome @8 :NodeWelcome;
    nodeBye @9 :NodeBye;
    heartbeat @10 :Heartbeat;
    structureRequest @11 :StructureRequest;
    structureBatch @12 :StructureBatch;
    jobSpec @13 :JobSpec;
    jobAccepted @14 :JobAccepted;
    jobProgress @15 :JobProgress;
    jobFinished @16 :JobFinished;
    jobCancel @17 :JobCancel;
    frameFeatures @18 :FrameFeatures;
    feedback @19 :Feedback;
    control @20 :Control;
    monitorSubscribe @21 :MonitorSubscribe;
    monitorEvent @22 :MonitorEvent;
    monitorSnapshot @23 :MonitorSnapshot;
    errorReply @24 :ErrorReply;
    ack @25 :Ack;
    ping @26 :Ping;
  }
}

# --- node membership -------------------------------------------------------------------------

struct NodeHello {
  nodeId @0 :Text;
  hostname @1 :Text;
  incarnation @2 :UInt64;   # changes every time the process starts
  pid @3 :UInt32;
  cores @4 :UInt32;
  gpus @5 :UInt32;
  version @6 :Text;         # mummi version of the sender
}

struct NodeWelcome {
  headId @0 :Text;
  campaign @1 :Text;
  heartbeatPeriodMs @2 :UInt32;
  incarnation @3 :UInt64;   # of the head
}

struct NodeBye {
  nodeId @0 :Text;
  reason @1 :Text;
}

struct Heartbeat {
  nodeId @0 :Text;
  incarnation @1 :UInt64;
  seq @2 :UInt64;
  sentUnixNs @3 :Int64;
}

struct Ping {
  seq @0 :UInt64;
  payload @1 :Data;
}

# --- structure generator ---------------------------------------------------------------------

struct StructureRequest {
  requestId @0 :UInt64;
  count @1 :UInt32;
}

struct Structure {
  id @0 :UInt64;
  latent @1 :List(Float32);
  lambda @2 :Float32;              # position between state A (0) and B (1)
  sampler @3 :Text;
  coordsNm @4 :List(Float32);      # x, y, z per bead
  epotKjMol @5 :Float64;           # potential energy after vacuum minimisation
  fmaxKjMolNm @6 :Float64;         # largest force after vacuum minimisation
  valid @7 :Bool;
}

struct StructureBatch {
  requestId @0 :UInt64;
  structures @1 :List(Structure);
}

# --- jobs (createsims and simulation) --------------------------------------------------------

enum JobKind {
  createsims @0;
  simulation @1;
}

struct JobSpec {
  jobId @0 :UInt64;
  kind @1 :JobKind;
  structureId @2 :UInt64;
  attempt @3 :UInt32;
  seed @4 :UInt64;
  cores @5 :UInt32;
  gpus @6 :UInt32;
  targetNs @7 :Float64;
  inputDir @8 :Text;
  workDir @9 :Text;
  params @10 :List(KeyValue);
}

struct JobAccepted {
  jobId @0 :UInt64;
  nodeId @1 :Text;
}

struct JobProgress {
  jobId @0 :UInt64;
  nsDone @1 :Float64;
  nsPerDay @2 :Float64;
  frames @3 :UInt64;
}

enum JobStatus {
  succeeded @0;
  failed @1;
  cancelled @2;
}

enum FailureReason {
  none @0;
  processCrashed @1;
  blewUp @2;            # LINCS / SETTLE warnings turned fatal
  nonFiniteEnergy @3;
  timeout @4;
  badInput @5;
  nodeLost @6;
  cancelled @7;
  other @8;
}

struct JobFinished {
  jobId @0 :UInt64;
  status @1 :JobStatus;
  reason @2 :FailureReason;
  message @3 :Text;
  outputDir @4 :Text;
  nsDone @5 :Float64;
}

struct JobCancel {
  jobId @0 :UInt64;
  reason @1 :Text;
}

# --- analysis and feedback -------------------------------------------------------------------

struct Feature {
  name @0 :Text;
  values @1 :List(Float64);
}

struct FrameFeatures {
  simId @0 :UInt64;
  structureId @1 :UInt64;
  frameIndex @2 :UInt64;
  timePs @3 :Float64;
  features @4 :List(Feature);
  latent @5 :List(Float32);
}

enum FeedbackKind {
  validation @0;
  createsims @1;
  frame @2;
}

struct Feedback {
  kind @0 :FeedbackKind;
  structureId @1 :UInt64;
  simId @2 :UInt64;
  ok @3 :Bool;
  latent @4 :List(Float32);
  lambda @5 :Float32;
  features @6 :List(Feature);
}

# --- control and monitoring ------------------------------------------------------------------

enum ControlCommand {
  swapSampler @0;   # target = sampler name, params = its settings
  pause @1;
  resume @2;
  drainNode @3;     # target = node id
  setLimit @4;      # target = key, value = new value
  stop @5;
}

struct Control {
  command @0 :ControlCommand;
  target @1 :Text;
  value @2 :Text;
  params @3 :List(KeyValue);
  issuer @4 :Text;
}

struct MonitorSubscribe {
  topics @0 :List(Text);
  client @1 :Text;
}

struct MonitorEvent {
  seq @0 :UInt64;
  unixNs @1 :Int64;
  topic @2 :Text;
  kind @3 :Text;
  text @4 :Text;
  fields @5 :List(KeyValue);
}

struct NodeStatus {
  nodeId @0 :Text;
  alive @1 :Bool;
  coresTotal @2 :UInt32;
  coresBusy @3 :UInt32;
  gpusTotal @4 :UInt32;
  gpusBusy @5 :UInt32;
}

struct MonitorSnapshot {
  unixNs @0 :Int64;
  nodes @1 :List(NodeStatus);
  jobsQueued @2 :UInt32;
  jobsRunning @3 :UInt32;
  jobsDone @4 :UInt32;
  jobsFailed @5 :UInt32;
  structureBuffer @6 :UInt32;
  sampler @7 :Text;
  nsSimulated @8 :Float64;
  nsPerDay @9 :Float64;
  recentErrors @10 :List(Text);
}

enum ErrorCode {
  unknownTarget @0;
  timeout @1;
  badMessage @2;
  rejected @3;
  internal @4;
  unauthorized @5;
  peerDown @6;
}

struct ErrorReply {
  code @0 :ErrorCode;
  message @1 :Text;
}

struct Ack {
  text @0 :Text;
}
