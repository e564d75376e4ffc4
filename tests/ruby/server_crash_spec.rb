# frozen_string_literal: true

require_relative "spec_helper"
require "rbconfig"
require "socket"

# Four forked Ruby clients (like puma workers) write and read through one
# igniter-ledger-server process in fsync mode while it is killed with SIGKILL at random
# moments and restarted. Every write a client saw acknowledged must be in the ledger
# afterwards, and no client may read back an acknowledged fact as missing.
# (CRASH_DURABILITY=none makes it fail, as it must: acknowledged writes then sit in a buffer.)
# CRASH_SECONDS sets how long the clients run (default 4); CRASH_ENGINES the server
# engines to run it against (default "ruby,native": the Ruby server, the Rust one).
RSpec.describe "ledger server under kill -9 with forked clients" do
  L = Igniter::Ledger unless defined?(L)
  EXE = File.join(REPO_ROOT, "exe", "igniter-ledger-server")

  def free_port
    s = TCPServer.new("127.0.0.1", 0)
    s.addr[1]
  ensure
    s&.close
  end

  def spawn_server(path, port, engine)
    pid = Process.spawn(RbConfig.ruby, EXE, "--engine", engine, "--path", path, "--port", port.to_s,
                        "--durability", ENV.fetch("CRASH_DURABILITY", "fsync"),
                        "--log-level", "error", out: File::NULL, err: File::NULL)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 20
    loop do
      TCPSocket.new("127.0.0.1", port).close
      return pid
    rescue SystemCallError
      raise "server did not come up" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.05
    end
  end

  ENV.fetch("CRASH_ENGINES", "ruby,native").split(",").each do |engine|
    it "loses no acknowledged write and shows no client a fact that is later lost (#{engine} engine)" do
      Dir.mktmpdir("ledger-crash") do |dir|
        path = File.join(dir, "crash.wal")
        port = free_port
        seconds = Float(ENV.fetch("CRASH_SECONDS", "4"))
        rng = Random.new(RSpec.configuration.seed)
        server = spawn_server(path, port, engine)

        clients = 4.times.map do |c|
          fork do
            acks = File.open(File.join(dir, "acks-#{c}"), "a")
            acks.sync = true
            bad = File.open(File.join(dir, "violations-#{c}"), "a")
            bad.sync = true
            remote = L.connect("tcp://127.0.0.1:#{port}", timeout: 10)
            acked = []
            n = 0
            stop_at = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
            while Process.clock_gettime(Process::CLOCK_MONOTONIC) < stop_at
              begin
                if acked.any? && n.odd?
                  key, id = acked.sample
                  seen = remote.read_fact(store: :"w#{c}", key: key)
                  bad.puts("#{key} #{id} missing") if seen.nil?
                else
                  fact = remote.write(store: :"w#{c}", key: "k#{n}", value: { client: c, n: n })
                  acks.puts("#{fact.key} #{fact.id}")
                  acked << [fact.key, fact.id]
                end
              rescue L::ConnectionError
                sleep 0.02 # the server is down: its outcome is unknown, nothing is recorded
              end
              n += 1
            end
            exit!(0)
          end
        end

        kills = 0
        stop_at = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
        while Process.clock_gettime(Process::CLOCK_MONOTONIC) < stop_at - 0.5
          sleep rng.rand(0.2..0.6)
          Process.kill(:KILL, server)
          Process.wait(server)
          kills += 1
          server = spawn_server(path, port, engine)
        end
        clients.each { |pid| Process.wait(pid) }
        expect(clients.size).to eq(4)
        Process.kill(:TERM, server)
        Process.wait(server)

        acked = Dir[File.join(dir, "acks-*")].flat_map { |f| File.readlines(f, chomp: true) }.map(&:split)
        violations = Dir[File.join(dir, "violations-*")].flat_map { |f| File.readlines(f, chomp: true) }
        ledger = L::LedgerStore.open(path)
        missing = acked.reject { |_key, id| ledger.fact_by_id(id) }
        ledger.close

        expect(kills).to be >= 2
        expect(acked.size).to be > 20
        expect(violations).to eq([])
        expect(missing).to eq([])
      end
    end
  end
end
