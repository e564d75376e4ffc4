# frozen_string_literal: true

require "socket"
require "json"
require "securerandom"
require "base64"
require "net/http"

# A minimal Chrome DevTools Protocol client for the browser test: starts headless
# Chromium on a URL, evaluates JavaScript in the page and takes screenshots, over the
# DevTools WebSocket (a small RFC 6455 client: text frames, masked out, unfragmented or
# continued in).
class CDP
  attr_reader :pid

  def self.chromium
    %w[chromium chromium-browser google-chrome].map { |n| ENV["PATH"].split(":").map { |d| File.join(d, n) } }
                                               .flatten.find { |p| File.executable?(p) }
  end

  def initialize(url, profile_dir:, width: 900, height: 600)
    @profile = profile_dir
    @err = File.join(profile_dir, "chromium.log")
    @pid = Process.spawn(CDP.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--remote-debugging-port=0", "--user-data-dir=#{profile_dir}/profile",
                         "--window-size=#{width},#{height}", url, out: File::NULL, err: @err)
    port = wait_for_port
    target = wait_for_page(port)
    connect(target.fetch("webSocketDebuggerUrl"))
    @id = 0
  end

  # Evaluates `expression` in the page; answers its value.
  def eval(expression)
    result = command("Runtime.evaluate", expression: expression, returnByValue: true)
    result.dig("result", "value")
  end

  # Polls until the block, given eval, answers truthy; raises after timeout seconds.
  def wait_until(timeout: 20)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      value = yield
      return value if value
      raise "browser: condition not met within #{timeout}s" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.1
    end
  end

  def screenshot(path)
    data = command("Page.captureScreenshot", format: "png").fetch("data")
    File.binwrite(path, Base64.decode64(data))
    path
  end

  def close
    @socket&.close
    Process.kill(:TERM, @pid)
    Process.wait(@pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end

  private

  def wait_for_port
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 60
    loop do
      text = File.exist?(@err) ? File.read(@err) : ""
      port = text[%r{DevTools listening on ws://127\.0\.0\.1:(\d+)/}, 1]
      return Integer(port) if port
      raise "chromium did not start:\n#{text[-2000..] || text}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.1
    end
  end

  def wait_for_page(port)
    20.times do
      list = JSON.parse(Net::HTTP.get(URI("http://127.0.0.1:#{port}/json/list")))
      page = list.find { |t| t["type"] == "page" }
      return page if page

      sleep 0.2
    end
    raise "chromium opened no page"
  end

  def connect(ws_url)
    uri = URI(ws_url)
    @socket = TCPSocket.new(uri.host, uri.port)
    key = Base64.strict_encode64(SecureRandom.bytes(16))
    @socket.write("GET #{uri.path} HTTP/1.1\r\nHost: #{uri.host}:#{uri.port}\r\nUpgrade: websocket\r\n" \
                  "Connection: Upgrade\r\nSec-WebSocket-Key: #{key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    status = @socket.gets
    raise "websocket handshake failed: #{status}" unless status.to_s.include?(" 101 ")

    nil until @socket.gets == "\r\n"
  end

  def command(method, **params)
    @id += 1
    send_text(JSON.generate({ id: @id, method: method, params: params }))
    loop do
      msg = JSON.parse(read_message)
      next unless msg["id"] == @id
      raise "CDP #{method}: #{msg["error"]}" if msg["error"]

      return msg["result"]
    end
  end

  def send_text(text)
    payload = text.b
    head = [0x81].pack("C")
    len = payload.bytesize
    head << if len < 126 then [0x80 | len].pack("C")
            elsif len < 65_536 then [0x80 | 126, len].pack("Cn")
            else [0x80 | 127, len].pack("CQ>")
            end
    mask = SecureRandom.bytes(4)
    masked = payload.bytes.each_with_index.map { |b, i| b ^ mask.getbyte(i % 4) }.pack("C*")
    @socket.write(head + mask + masked)
  end

  def read_message
    message = +""
    loop do
      b0, b1 = @socket.read(2).unpack("CC")
      len = b1 & 0x7F
      len = @socket.read(2).unpack1("n") if len == 126
      len = @socket.read(8).unpack1("Q>") if len == 127
      mask = (b1 & 0x80).zero? ? nil : @socket.read(4)
      data = len.zero? ? +"" : @socket.read(len)
      data = data.bytes.each_with_index.map { |b, i| b ^ mask.getbyte(i % 4) }.pack("C*") if mask
      opcode = b0 & 0x0F
      next if opcode == 0x9 || opcode == 0xA # ping/pong

      message << data
      return message.force_encoding(Encoding::UTF_8) if (b0 & 0x80) != 0
    end
  end
end
