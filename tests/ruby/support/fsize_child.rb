# frozen_string_literal: true

# The child half of the "file too large" I/O-fault test (tests/ruby/io_faults_spec.rb).
#
#   ruby -I lib tests/ruby/support/fsize_child.rb PATH DURABILITY
#
# Lowers this process's RLIMIT_FSIZE (with SIGXFSZ ignored, a write past the limit fails
# with EFBIG, like a full disk) while it writes, batches and checkpoints, then lifts the
# limit and writes again. Prints one JSON object describing what it saw. Its stdout must
# be a pipe: the limit applies to every regular file this process writes.

require "digest"
require "json"
require "igniter-ledger"

path, durability = ARGV
INF = Process::RLIM_INFINITY
trap("XFSZ", "IGNORE")
out = { acked: [] }

def failure(e)
  { class: e.class.name, message: e.message, errno: e.respond_to?(:errno) ? e.errno : nil }
end

def snapshot_digest(path)
  File.exist?("#{path}.snap") ? Digest::SHA256.file("#{path}.snap").hexdigest : nil
end

store = Igniter::Ledger.open(path, durability: durability.to_sym)
10.times { |i| out[:acked] << store.write(store: :a, key: "k#{i}", value: i).id }
# Also writes out a :none store's buffer. Its wal_offset is where the log ends: in :fsync
# mode the file is longer while open (zero-filled space reserved ahead of the log).
log_end = store.checkpoint[:wal_offset]
out[:snapshot] = snapshot_digest(path)

# 1. Single writes until the file limit is hit.
Process.setrlimit(Process::RLIMIT_FSIZE, log_end + 150, INF)
ok = 0
size = File.size(path)
begin
  10_000.times do
    out[:acked] << store.write(store: :a, key: "x", value: "y" * 60).id
    ok += 1
    size = File.size(path)
  end
  out[:write] = { ok: ok, error: nil }
rescue StandardError => e
  out[:write] = failure(e).merge(ok: ok, fact_count: store.fact_count, wal: File.size(path), wal_before: size,
                                 latest: store.read_fact(store: :a, key: "x")&.id)
end

# 2. A transaction while the limit is still there.
before = [store.fact_count, File.size(path)]
begin
  store.transaction { |tx| 5.times { |i| tx.write(store: :a, key: "t#{i}", value: i) } }
  out[:transaction] = { error: nil }
rescue StandardError => e
  out[:transaction] = failure(e).merge(before: before, after: [store.fact_count, File.size(path)],
                                       visible: (0...5).count { |i| store.read(store: :a, key: "t#{i}") })
end

# 3. A checkpoint that cannot write its snapshot.
Process.setrlimit(Process::RLIMIT_FSIZE, 100, INF)
count = store.fact_count
begin
  store.checkpoint
  out[:checkpoint] = { error: nil }
rescue StandardError => e
  out[:checkpoint] = failure(e).merge(snapshot: snapshot_digest(path), fact_count_before: count,
                                      fact_count: store.fact_count)
end

# 4. Room again: the store keeps working.
Process.setrlimit(Process::RLIMIT_FSIZE, INF, INF)
begin
  out[:acked] << store.write(store: :a, key: "after", value: :ok).id
  out[:after] = { error: nil, checkpoint: store.checkpoint[:fact_count] }
rescue StandardError => e
  out[:after] = failure(e)
end
out[:fact_count] = store.fact_count
store.close
$stdout.write(JSON.generate(out))
