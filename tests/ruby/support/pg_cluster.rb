# frozen_string_literal: true

require "socket"
require "tmpdir"
require "fileutils"
require "open3"

# A throwaway PostgreSQL cluster for the sync specs, as the Rust tests start one
# (server/tests/support/pg.rs): initdb into a temporary directory, started on a free local
# port with fsync off, stopped (immediate) and removed by #stop. As root, the server runs
# as `postgres` through `runuser`. PgCluster.start answers nil with a printed reason when
# the server binaries are absent (or raises when IGNITER_REQUIRE_PG is set).
class PgCluster
  attr_reader :port, :dir

  def self.bin_dir
    if (d = ENV["IGNITER_PG_BIN"])
      return File.file?(File.join(d, "initdb")) && File.file?(File.join(d, "pg_ctl")) ? d : nil
    end

    Dir.glob("/usr/lib/postgresql/*/bin")
       .select { |b| File.file?(File.join(b, "initdb")) && File.file?(File.join(b, "pg_ctl")) }
       .max_by { |b| b.split("/")[-2].to_i }
  end

  # A started cluster, or nil (with the reason printed) when PostgreSQL is not installed.
  def self.start
    bin = bin_dir
    unless bin
      why = "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin or $IGNITER_PG_BIN; " \
            "install Debian's postgresql package"
      raise why if ENV["IGNITER_REQUIRE_PG"]

      warn "SKIPPED: #{why}"
      return nil
    end
    new(bin).tap(&:boot)
  end

  def initialize(bin)
    @bin = bin
    @as_postgres = Process.uid.zero?
    @dir = Dir.mktmpdir("igniter-pg-")
    @port = Addrinfo.tcp("127.0.0.1", 0).bind { |s| s.local_address.ip_port }
  end

  def boot
    if @as_postgres && !system("chown", "postgres:postgres", @dir)
      stop
      raise "running as root and cannot hand #{@dir} to the postgres user"
    end
    run!("initdb", "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D", data)
    run!("pg_ctl", "-D", data, "-w", "-t", "60", "-m", "immediate", "-o",
         "-p #{@port} -k #{@dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off " \
         "-c max_connections=40 -c shared_buffers=16MB",
         "-l", File.join(@dir, "server.log"), "start")
    self
  rescue StandardError
    stop
    raise
  end

  def url(db)
    "postgres://postgres@127.0.0.1:#{@port}/#{db}"
  end

  def create_db(name)
    run!("createdb", "-h", "127.0.0.1", "-p", @port.to_s, "-U", "postgres", name)
    url(name)
  end

  # Runs SQL with psql; the rows as Arrays of Strings.
  def query(db, sql)
    out = run!("psql", "-h", "127.0.0.1", "-p", @port.to_s, "-U", "postgres", "-d", db, "-XAtq", "-F", "\t",
               "-c", sql)
    out.lines.map { |l| l.chomp.split("\t", -1) }
  end

  # Stops the server and removes its directory (safe to call twice).
  def stop
    if File.directory?(data)
      cmd("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop").then do |c|
        Open3.capture3(*c)
      end
    end
  ensure
    FileUtils.rm_rf(@dir) if @dir
  end

  private

  def data
    File.join(@dir, "data")
  end

  def cmd(tool, *args)
    exe = File.join(@bin, tool)
    @as_postgres ? ["runuser", "-u", "postgres", "--", exe, *args] : [exe, *args]
  end

  def run!(tool, *args)
    out, err, st = Open3.capture3(*cmd(tool, *args))
    log = File.read(File.join(@dir, "server.log")) rescue "" # rubocop:disable Style/RescueModifier
    raise "#{tool} failed: #{err}\n#{log}" unless st.success?

    out
  end
end
