-- securemsg.lua: a Wireshark dissector for the securemsg lab's wire protocol.
--
-- The specification is PROTOCOL.md: 4-byte big-endian length-prefixed frames over TCP
-- (section 1), the xor cipher (section 2) whose server answers every frame with
-- "ACK: Received N bytes" (section 3), and secure mode, Noise_NNpsk0_25519_ChaChaPoly_SHA256
-- (section 8): two 48-byte handshake messages, then transport chunks of 17..65535 bytes.
--
-- Install and use: wireshark/README.md. Written for Wireshark 3.x/4.x (Lua 5.2 to 5.4).

local proto = Proto("securemsg", "securemsg lab protocol")

local DIR_C2S, DIR_S2C = 0, 1
local MODE_AUTO, MODE_XOR, MODE_NOISE = 0, 1, 2
local NOISE_HANDSHAKE_LEN, NOISE_KEY_LEN, NOISE_TAG_LEN = 48, 32, 16
local NOISE_MIN_TRANSPORT, NOISE_MAX_TRANSPORT = 17, 65535
local DEFAULT_PORTS = "5000-5003,5100-5103"
local NOISE_CHUNK_DATA = 65518 -- message data bytes of a full chunk
local INFO_TEXT_MAX = 40

-- Lua 5.2 has bit32, Lua 5.3+ the ~ operator (kept out of the parser's way with load).
local bxor = (bit32 and bit32.bxor) or (bit and bit.bxor)
    or load("return function(a, b) return a ~ b end")()
local unpack = table.unpack or unpack

-- Preferences --------------------------------------------------------------------------

proto.prefs.ports = Pref.range("Server TCP ports", DEFAULT_PORTS,
    "TCP ports that securemsg servers listen on (the Docker lab's: 5000-5003; the handout's "
    .. "local servers: 5100-5103). The side on one of these ports is the server. A port "
    .. "another dissector owns (X11: 6000-6063) is taken over only when listed here.", 65535)
proto.prefs.mode = Pref.enum("Cipher", MODE_AUTO,
    "How frames are read: auto guesses per connection from its first frame (a 48-byte "
    .. "frame that does not decrypt to text with the xor key is a Noise handshake)",
    { { "auto", "Auto (guess per connection)", MODE_AUTO },
      { "xor", "xor (the seed's cipher)", MODE_XOR },
      { "noise", "noise (Noise_NNpsk0_25519_ChaChaPoly_SHA256)", MODE_NOISE } }, false)
proto.prefs.xor_key = Pref.string("XOR key", "MY_SECRET_KEY",
    "The shared key of xor mode, as text; prefix it with hex: for a key written as hex "
    .. "digits (hex:4d595f...)")
proto.prefs.max_frame = Pref.uint("Maximum frame", 1048576,
    "The receivers' --max-frame: a longer xor frame is malformed (the server closes)")

-- Fields -------------------------------------------------------------------------------

local directions = { [DIR_C2S] = "client → server", [DIR_S2C] = "server → client" }
local modes = { [MODE_XOR] = "xor", [MODE_NOISE] = "noise" }
local NOISE_HS1, NOISE_HS2, NOISE_TRANSPORT = 1, 2, 3
local noise_types = {
    [NOISE_HS1] = "handshake message 1 (-> psk, e)",
    [NOISE_HS2] = "handshake message 2 (<- e, ee)",
    [NOISE_TRANSPORT] = "transport chunk",
}

local f = {
    length = ProtoField.uint32("securemsg.length", "Length", base.DEC, nil, nil,
        "Payload length (the 4-byte big-endian prefix; the prefix itself not counted)"),
    direction = ProtoField.uint8("securemsg.direction", "Direction", base.DEC, directions),
    mode = ProtoField.uint8("securemsg.mode", "Cipher", base.DEC, modes),
    index = ProtoField.uint32("securemsg.index", "Frame in this direction", base.DEC, nil, nil,
        "1 for the first frame each side sends on this connection"),
    payload = ProtoField.bytes("securemsg.payload", "Payload"),
    plaintext = ProtoField.string("securemsg.plaintext", "Plaintext", base.UNICODE,
        "The payload xor-decrypted with the key preference"),
    ack_n = ProtoField.uint32("securemsg.ack_n", "ACK length N", base.DEC, nil, nil,
        "N of the server's 'ACK: Received N bytes'"),
    request_in = ProtoField.framenum("securemsg.request_in", "Request in frame", base.NONE,
        frametype and frametype.REQUEST),
    request_len = ProtoField.uint32("securemsg.request_len", "Request length", base.DEC, nil,
        nil, "Length of the client frame this ACK answers"),
    ack_in = ProtoField.framenum("securemsg.ack_in", "ACK in frame", base.NONE,
        frametype and frametype.RESPONSE),
    unparsed = ProtoField.bytes("securemsg.unparsed", "Bytes the receiver does not read"),
    noise_type = ProtoField.uint8("securemsg.noise.msg_type", "Noise message", base.DEC,
        noise_types),
    noise_ephemeral = ProtoField.bytes("securemsg.noise.ephemeral",
        "Ephemeral public key (X25519)"),
    noise_payload_len = ProtoField.uint32("securemsg.noise.payload_len",
        "Encrypted payload length", base.DEC, nil, nil,
        "The handshake payload is empty: its encryption is the tag alone"),
    noise_marker = ProtoField.bytes("securemsg.noise.marker", "Chunk marker (encrypted)",
        base.NONE, "0x00 more chunks follow / 0x01 last chunk, encrypted with the data"),
    noise_ciphertext = ProtoField.bytes("securemsg.noise.ciphertext", "Ciphertext"),
    noise_tag = ProtoField.bytes("securemsg.noise.tag", "Tag (Poly1305)"),
    noise_nonce = ProtoField.uint64("securemsg.noise.nonce", "Nonce n", base.DEC, nil, nil,
        "The transport counter of this direction: 0 for the first chunk after the handshake"),
    noise_hs1_in = ProtoField.framenum("securemsg.noise.hs1_in", "Handshake message 1 in frame",
        base.NONE, frametype and frametype.REQUEST),
    noise_data_len = ProtoField.uint32("securemsg.noise.data_len", "Message data length",
        base.DEC, nil, nil, "Bytes of message data in this chunk: length - 1 marker - 16 tag"),
}
proto.fields = {}
for _, field in pairs(f) do
    proto.fields[#proto.fields + 1] = field
end

local group, severity = expert.group, expert.severity
local ef = {
    too_large = ProtoExpert.new("securemsg.too_large.expert",
        "Frame length above the maximum frame: the receiver closes the connection",
        group.MALFORMED, severity.ERROR),
    unparsed = ProtoExpert.new("securemsg.unparsed.expert",
        "Bytes after an oversize frame: the receiver has stopped reading",
        group.SEQUENCE, severity.NOTE),
    not_ack = ProtoExpert.new("securemsg.not_ack", "Server frame is not an ACK (wrong key?)",
        group.PROTOCOL, severity.WARN),
    ack_mismatch = ProtoExpert.new("securemsg.ack_mismatch",
        "ACK length differs from the request's", group.PROTOCOL, severity.WARN),
    bad_handshake = ProtoExpert.new("securemsg.noise.bad_handshake",
        "Noise handshake message is not 48 bytes", group.MALFORMED, severity.ERROR),
    bad_transport = ProtoExpert.new("securemsg.noise.bad_transport",
        "Noise transport frame outside 17..65535 bytes", group.MALFORMED, severity.ERROR),
    partial = ProtoExpert.new("securemsg.partial",
        "Frame continues beyond this segment (TCP reassembly is off)",
        group.REASSEMBLE, severity.NOTE),
    bad_key = ProtoExpert.new("securemsg.bad_key",
        "XOR key preference is not a usable key: nothing decrypted",
        group.PROTOCOL, severity.ERROR),
    incomplete = ProtoExpert.new("securemsg.noise.incomplete",
        "Noise handshake incomplete: the connection closed after message 1 (wrong key or cipher?)",
        group.SEQUENCE, severity.WARN),
    ack_digits = ProtoExpert.new("securemsg.noise.ack_len",
        "Noise ACK length does not fit 'ACK: Received N bytes' for its request",
        group.PROTOCOL, severity.WARN),
}
proto.experts = { ef.too_large, ef.unparsed, ef.not_ack, ef.ack_mismatch, ef.bad_handshake,
    ef.bad_transport, ef.partial, ef.bad_key, ef.incomplete, ef.ack_digits }

local tcp_stream_field = Field.new("tcp.stream")
local tcp_seq_field = Field.new("tcp.seq")

-- State of the capture, built on the first (in-order) pass ------------------------------
-- Wireshark dissects packets again, in any order, when one is selected; what needs the
-- order (which frame is a connection's first, which request an ACK answers) is decided the
-- first time a frame is seen and looked up afterwards.

local streams = {} -- tcp.stream -> { server_port, mode, count[dir], requests, broken[dir] }
local frames = {}  -- frame key -> { dir, index, mode, request }
local closes = {}  -- frame number -> { dir, hs1 }: the close of an incomplete handshake

function proto.init()
    streams, frames, closes = {}, {}, {}
end

-- Preference helpers -------------------------------------------------------------------

local port_ranges = {}

local function parse_ranges(text)
    local ranges = {}
    for item in tostring(text):gmatch("[^,%s]+") do
        local lo, hi = item:match("^(%d+)-(%d+)$")
        lo = tonumber(lo or item)
        hi = tonumber(hi or lo)
        if lo and hi then
            ranges[#ranges + 1] = { lo, hi }
        end
    end
    return ranges
end

local function in_ranges(port)
    for _, r in ipairs(port_ranges) do
        if port >= r[1] and port <= r[2] then
            return true
        end
    end
    return false
end

local function hex_to_bytes(hex)
    if #hex % 2 ~= 0 or hex:find("[^%x]") then
        return nil
    end
    return (hex:gsub("%x%x", function(pair) return string.char(tonumber(pair, 16)) end))
end

-- The key of the preference, or nil and why it is not one. A bad preference decrypts
-- nothing (an expert error says so): a silent fallback key would show wrong plaintexts.
local function current_key()
    local text = proto.prefs.xor_key or ""
    local hex = text:match("^hex:(.*)$")
    if hex then
        local key = hex_to_bytes((hex:gsub("%s", "")))
        if key == nil then
            return nil, string.format("XOR key preference %q: after hex: give an even number "
                .. "of hex digits (0-9, a-f)", text)
        end
        text = key
    end
    if text == "" then
        return nil, "XOR key preference is empty"
    end
    return text
end

local registered_ports = ""
local tcp_table = DissectorTable.get("tcp.port")

local function register_ports()
    local wanted = tostring(proto.prefs.ports or DEFAULT_PORTS)
    if wanted == registered_ports then
        return
    end
    if registered_ports ~= "" then
        tcp_table:remove(registered_ports, proto)
    end
    if wanted ~= "" then
        tcp_table:add(wanted, proto)
    end
    registered_ports = wanted
    port_ranges = parse_ranges(wanted)
end

function proto.prefs_changed()
    register_ports()
end

-- Byte helpers -------------------------------------------------------------------------

local XOR_CHUNK = 4096 -- string.char(unpack(t)) stays well below Lua's C stack limit

local function xor_string(data, key)
    local keybytes = { key:byte(1, -1) }
    local klen = #keybytes
    local out = {}
    for start = 1, #data, XOR_CHUNK do
        local bytes = { data:byte(start, math.min(start + XOR_CHUNK - 1, #data)) }
        for j = 1, #bytes do
            bytes[j] = bxor(bytes[j], keybytes[(start + j - 2) % klen + 1])
        end
        out[#out + 1] = string.char(unpack(bytes))
    end
    return table.concat(out)
end

-- The length of the UTF-8 sequence at s[i] (1..4), or nil when it is not well formed.
local function utf8_seq_len(s, i)
    local c = s:byte(i)
    local extra
    if c < 0x80 then
        return 1
    elseif c >= 0xc2 and c <= 0xdf then
        extra = 1
    elseif c >= 0xe0 and c <= 0xef then
        extra = 2
    elseif c >= 0xf0 and c <= 0xf4 then
        extra = 3
    else
        return nil
    end
    for k = 1, extra do
        local cc = s:byte(i + k)
        if cc == nil or cc < 0x80 or cc > 0xbf then
            return nil
        end
    end
    return extra + 1
end

-- Well-formed UTF-8 without control characters (tab, newline and return allowed): what a
-- typed message looks like, and what random ciphertext almost never is.
local function looks_like_text(s)
    local i = 1
    while i <= #s do
        local c = s:byte(i)
        if (c < 0x20 and c ~= 9 and c ~= 10 and c ~= 13) or c == 0x7f then
            return false
        end
        local n = utf8_seq_len(s, i)
        if n == nil then
            return false
        end
        i = i + n
    end
    return true
end

local C_ESCAPES = { [9] = "\\t", [10] = "\\n", [13] = "\\r" }

-- The Info column's text, escaped as the Plaintext field shows it: each byte that is not
-- UTF-8 as U+FFFD, control characters as \n or octal \ooo (a wrong key decrypts to
-- anything; a column must stay valid UTF-8). At most INFO_TEXT_MAX characters.
local function info_text(s)
    local out, i, shown = {}, 1, 0
    while i <= #s and shown < INFO_TEXT_MAX do
        local n = utf8_seq_len(s, i)
        local piece = n and s:sub(i, i + n - 1) or "\239\191\189"
        local c = s:byte(i)
        if n == 1 and (c < 0x20 or c == 0x7f) then
            piece = C_ESCAPES[c] or string.format("\\%03o", c)
        end
        out[#out + 1] = piece
        shown = shown + 1
        i = i + (n or 1)
    end
    return '"' .. table.concat(out) .. (i <= #s and "…" or "") .. '"'
end

-- Four printable ASCII bytes where a length prefix should be ("GET ", "HTTP", "SSH-"):
-- a text protocol, not a frame (as a length it is at least 0x20202020, over 500 MB).
local function ascii_word(tvb, offset)
    for i = 0, 3 do
        local c = tvb(offset + i, 1):uint()
        if c < 0x20 or c > 0x7e then
            return false
        end
    end
    return true
end

-- Connection state ---------------------------------------------------------------------

-- heuristic_port: the server's port as the heuristic saw it, nil when a port matched.
local function server_port_of(pinfo, heuristic_port)
    local src, dst = pinfo.src_port, pinfo.dst_port
    local s_in, d_in = in_ranges(src), in_ranges(dst)
    if s_in ~= d_in then
        return s_in and src or dst
    end
    if heuristic_port then
        return heuristic_port
    end
    local matched = pinfo.match_uint
    if matched == src or matched == dst then
        return matched -- the port Decode As (or the port table) matched
    end
    return dst -- clients speak first in both modes
end

local function stream_state(pinfo, heuristic_port)
    local field = tcp_stream_field()
    local id = field and field.value or -1
    local st = streams[id]
    if st == nil then
        st = {
            server_port = server_port_of(pinfo, heuristic_port),
            count = { [DIR_C2S] = 0, [DIR_S2C] = 0 },
            requests = {},
            broken = {},
            handshake = {}, -- noise: frame number of each direction's handshake message
            noise_msgs = {}, -- noise: the client's messages in order (noise_chunk)
            acks = 0,
        }
        streams[id] = st
    end
    return st
end

local function guess_mode(tvb, offset, length)
    local pref = proto.prefs.mode
    if pref == MODE_XOR or pref == MODE_NOISE then
        return pref
    end
    if length ~= NOISE_HANDSHAKE_LEN then
        return MODE_XOR
    end
    local key = current_key()
    if key == nil then
        return MODE_NOISE -- no key to tell text by: a 48-byte first frame is a handshake
    end
    local plain = xor_string(tvb:raw(offset + 4, length), key)
    return looks_like_text(plain) and MODE_XOR or MODE_NOISE
end

-- Noise: which message a transport chunk belongs to, tied by order as in xor mode. The
-- marker that ends a message is encrypted, but both programs fill every chunk but the
-- last (65518 data bytes), and the server answers each message with one ACK chunk: a
-- client chunk shorter than a full one ends its message, and an ACK ends the message it
-- answers (a message of an exact multiple of 65518 bytes).
local function noise_chunk(st, info, length, pinfo)
    if length < NOISE_MIN_TRANSPORT then
        return
    end
    local data_len = length - 1 - NOISE_TAG_LEN
    local msgs = st.noise_msgs
    if info.dir == DIR_C2S then
        local msg = st.open_msg
        if msg == nil then
            msg = { frame = pinfo.number, len = 0, index = #msgs + 1 }
            msgs[#msgs + 1] = msg
            st.open_msg = msg
        end
        msg.len = msg.len + data_len
        if data_len < NOISE_CHUNK_DATA then
            st.open_msg = nil
        end
        info.request = msg
    else
        st.acks = st.acks + 1
        local msg = msgs[st.acks]
        if msg then
            if msg == st.open_msg then
                st.open_msg = nil
            end
            msg.ack_frame = msg.ack_frame or pinfo.number
            info.request = msg
        end
    end
end

-- The frame's place on its connection, decided once (first pass) and remembered.
local function frame_info(tvb, offset, length, pinfo, st, dir)
    local key = pinfo.number .. ":" .. tvb:len() .. ":" .. offset
    local info = frames[key]
    if info == nil then
        st.mode = st.mode or guess_mode(tvb, offset, length)
        st.count[dir] = st.count[dir] + 1
        info = { dir = dir, index = st.count[dir], mode = st.mode }
        if st.mode == MODE_NOISE then
            if info.index == 1 then
                st.handshake[dir] = pinfo.number
            else
                noise_chunk(st, info, length, pinfo)
            end
        elseif dir == DIR_C2S then
            st.requests[info.index] = { len = length, frame = pinfo.number }
        else
            info.request = st.requests[info.index]
        end
        frames[key] = info
    end
    return info
end

-- Frame bodies -------------------------------------------------------------------------

local function add_ack(ftree, ptvb, plain, info, pinfo)
    local digits_at, _, digits = plain:find("^ACK: Received (%d+) bytes$")
    if digits_at == nil then
        ftree:add_proto_expert_info(ef.not_ack)
        return nil
    end
    local n = tonumber(digits)
    local item = ftree:add(f.ack_n, ptvb(#"ACK: Received ", #digits), n)
    local request = info.request
    if request then
        request.ack_frame = request.ack_frame or pinfo.number
        ftree:add(f.request_in, request.frame):set_generated()
        ftree:add(f.request_len, request.len):set_generated()
        if request.len ~= n then
            item:add_proto_expert_info(ef.ack_mismatch, string.format(
                "ACK says %d bytes, request #%d (frame %d) had %d", n, info.index,
                request.frame, request.len))
        end
    end
    return "ACK " .. digits
end

local function dissect_xor(tvb, offset, length, pinfo, ftree, info, st)
    local summary
    if length == 0 then
        ftree:add(f.plaintext, tvb(offset, 4), ""):set_generated()
        summary = '""'
    else
        ftree:add(f.payload, tvb(offset + 4, length))
        local key, problem = current_key()
        if key == nil then
            ftree:add_proto_expert_info(ef.bad_key, problem)
            return "(not decrypted: bad key preference)"
        end
        local plain = xor_string(tvb:raw(offset + 4, length), key)
        local ptvb = ByteArray.new(plain, true):tvb("Decrypted securemsg")
        ftree:add_packet_field(f.plaintext, ptvb(), ENC_UTF_8)
        summary = info_text(plain)
        if info.dir == DIR_S2C then
            summary = add_ack(ftree, ptvb, plain, info, pinfo) or summary
        end
    end
    if info.dir == DIR_C2S then
        local request = st.requests[info.index]
        if request and request.ack_frame then
            ftree:add(f.ack_in, request.ack_frame):set_generated()
        end
    elseif length == 0 then
        ftree:add_proto_expert_info(ef.not_ack)
    end
    return summary
end

local function dissect_handshake(tvb, offset, length, ftree, msg_type)
    ftree:add(f.noise_type, msg_type):set_generated()
    if length ~= NOISE_HANDSHAKE_LEN then
        if length > 0 then
            ftree:add(f.payload, tvb(offset + 4, length))
        end
        ftree:add_proto_expert_info(ef.bad_handshake,
            string.format("Noise handshake message of %d bytes (48 expected)", length))
        return "Bad handshake message (" .. length .. " bytes)"
    end
    local body = offset + 4
    ftree:add(f.noise_ephemeral, tvb(body, NOISE_KEY_LEN))
    ftree:add(f.noise_payload_len, 0):set_generated()
    ftree:add(f.noise_tag, tvb(body + NOISE_KEY_LEN, NOISE_TAG_LEN))
    return msg_type == NOISE_HS1 and "Handshake message 1 (psk, e)"
        or "Handshake message 2 (e, ee)"
end

-- A client chunk links to its message's ACK; an ACK chunk to the message it answers, whose
-- length N must fit its size: "ACK: Received N bytes" is 20 bytes plus N's digits.
local function add_noise_ties(ftree, info, data_len)
    local msg = info.request
    if msg == nil then
        return
    end
    if info.dir == DIR_C2S then
        if msg.ack_frame then
            ftree:add(f.ack_in, msg.ack_frame):set_generated()
        end
        return
    end
    ftree:add(f.request_in, msg.frame):set_generated()
    local item = ftree:add(f.request_len, msg.len):set_generated()
    local want = #string.format("ACK: Received %d bytes", msg.len)
    if data_len ~= want then
        item:add_proto_expert_info(ef.ack_digits, string.format(
            "ACK chunk of %d data bytes; 'ACK: Received %d bytes' (message #%d, frame %d) is %d",
            data_len, msg.len, msg.index, msg.frame, want))
    end
end

local function dissect_transport(tvb, offset, length, ftree, info)
    ftree:add(f.noise_type, NOISE_TRANSPORT):set_generated()
    local n = info.index - 2 -- the handshake took one frame of each direction
    if length < NOISE_MIN_TRANSPORT then
        if length > 0 then
            ftree:add(f.payload, tvb(offset + 4, length))
        end
        ftree:add_proto_expert_info(ef.bad_transport,
            string.format("Noise transport frame of %d bytes (17..65535)", length))
        return "Bad transport frame (" .. length .. " bytes)"
    end
    local body, data_len = offset + 4, length - 1 - NOISE_TAG_LEN
    ftree:add(f.noise_nonce, UInt64(n)):set_generated()
    ftree:add(f.noise_marker, tvb(body, 1))
    if data_len > 0 then
        ftree:add(f.noise_ciphertext, tvb(body + 1, data_len))
    end
    ftree:add(f.noise_tag, tvb(body + 1 + data_len, NOISE_TAG_LEN))
    ftree:add(f.noise_data_len, data_len):set_generated()
    add_noise_ties(ftree, info, data_len)
    return string.format("Transport n=%d (%d data bytes)", n, data_len)
end

local function dissect_noise(tvb, offset, length, ftree, info)
    if info.index == 1 then
        local msg_type = info.dir == DIR_C2S and NOISE_HS1 or NOISE_HS2
        return dissect_handshake(tvb, offset, length, ftree, msg_type)
    end
    return dissect_transport(tvb, offset, length, ftree, info)
end

-- Columns ------------------------------------------------------------------------------

local function add_info(pinfo, dir, length, summary)
    local arrow = dir == DIR_C2S and "C→S" or "S→C"
    local text = string.format("%s Len=%d %s", arrow, length, summary)
    if tostring(pinfo.cols.protocol) == "SECUREMSG" then
        pinfo.cols.info:append(" | " .. text) -- another frame of the same packet
    else
        pinfo.cols.protocol:set("SECUREMSG")
        pinfo.cols.info:set(text)
    end
end

-- One frame, and the frame-level loop over a TCP payload --------------------------------

local function frame_tree(tree, tvb, offset, size, dir)
    local ftree = tree:add(proto, tvb(offset, size))
    ftree:add(f.direction, dir):set_generated()
    ftree:add(f.length, tvb(offset, 4))
    return ftree
end

local function dissect_frame(tvb, offset, length, pinfo, tree, st, dir)
    local info = frame_info(tvb, offset, length, pinfo, st, dir)
    local ftree = frame_tree(tree, tvb, offset, 4 + length, dir)
    ftree:add(f.mode, info.mode):set_generated()
    ftree:add(f.index, info.index):set_generated()
    local summary
    if info.mode == MODE_NOISE then
        summary = dissect_noise(tvb, offset, length, ftree, info)
    else
        summary = dissect_xor(tvb, offset, length, pinfo, ftree, info, st)
    end
    ftree:append_text(string.format(", %s, Len=%d: %s", directions[dir], length, summary))
    add_info(pinfo, dir, length, summary)
end

-- A length above the receiver's limit: it closes without reading the body, so nothing
-- after the prefix on this side of the connection is a frame.
local function dissect_oversize(tvb, offset, length, limit, pinfo, tree, st, dir)
    st.broken[dir] = st.broken[dir] or pinfo.number
    local rest = tvb:len() - offset
    local ftree = frame_tree(tree, tvb, offset, rest, dir)
    ftree:add_proto_expert_info(ef.too_large,
        string.format("Frame length %d above the maximum frame %d", length, limit))
    if rest > 4 then
        ftree:add(f.unparsed, tvb(offset + 4, rest - 4))
    end
    ftree:append_text(string.format(", %s, Len=%d: too large", directions[dir], length))
    add_info(pinfo, dir, length, "too large (limit " .. limit .. ")")
end

local function dissect_unparsed(tvb, pinfo, tree, dir)
    local ftree = tree:add(proto, tvb())
    ftree:add(f.direction, dir):set_generated()
    ftree:add(f.unparsed, tvb()):add_proto_expert_info(ef.unparsed)
    add_info(pinfo, dir, tvb:len(), "after an oversize frame")
end

local function frame_limit(st)
    if st.mode == MODE_NOISE then
        return NOISE_MAX_TRANSPORT
    end
    return proto.prefs.max_frame
end

local function dissect_payload(tvb, pinfo, tree, heuristic_port)
    local total = tvb:len()
    if total ~= tvb:reported_len() then
        return 0 -- snapped packet: frames cannot be followed
    end
    local st = stream_state(pinfo, heuristic_port)
    if st.foreign then
        return 0
    end
    if not st.started then -- the connection's first data decides
        if total >= 4 and ascii_word(tvb, 0) and tvb(0, 4):uint() > frame_limit(st) then
            st.foreign = true -- HTTP or another text protocol on our port: not ours
            return 0
        end
        st.started = true
    end
    local dir = pinfo.dst_port == st.server_port and DIR_C2S or DIR_S2C
    if st.broken[dir] and pinfo.number > st.broken[dir] then
        dissect_unparsed(tvb, pinfo, tree, dir)
        return total
    end
    local offset = 0
    while offset < total do
        local avail = total - offset
        if avail < 4 then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            return total
        end
        local length = tvb(offset, 4):uint()
        local limit = frame_limit(st)
        if length > limit then
            dissect_oversize(tvb, offset, length, limit, pinfo, tree, st, dir)
            return total
        end
        if avail < 4 + length then
            if pinfo.can_desegment > 0 then
                pinfo.desegment_offset = offset
                pinfo.desegment_len = 4 + length - avail
                return total
            end
            local ftree = frame_tree(tree, tvb, offset, avail, dir)
            ftree:add_proto_expert_info(ef.partial)
            return total
        end
        dissect_frame(tvb, offset, length, pinfo, tree, st, dir)
        offset = offset + 4 + length
    end
    return total
end

function proto.dissector(tvb, pinfo, tree)
    return dissect_payload(tvb, pinfo, tree, nil)
end

-- Heuristic for captures on other ports (the demo's servers listen on port 0) -----------
-- Claims a connection whose segment holds whole frames that are either a first Noise
-- handshake message (48 bytes, the connection's first data) or xor-decrypt to text. The
-- sender of an ACK is the server; otherwise the sender is the client (it speaks first).

local function whole_frames(tvb)
    local offset, total, lengths = 0, tvb:len(), {}
    while offset + 4 <= total do
        local length = tvb(offset, 4):uint()
        if length > proto.prefs.max_frame or offset + 4 + length > total then
            return nil
        end
        lengths[#lengths + 1] = length
        offset = offset + 4 + length
    end
    return offset == total and lengths or nil
end

local function heuristic(tvb, pinfo, tree)
    if tvb:len() < 4 or tvb:len() ~= tvb:reported_len() or ascii_word(tvb, 0) then
        return false
    end
    local lengths = whole_frames(tvb)
    if lengths == nil then
        return false
    end
    local seq = tcp_seq_field()
    local first_data = seq and seq.value == 1
    local server_port = pinfo.dst_port
    local claim = first_data and #lengths == 1 and lengths[1] == NOISE_HANDSHAKE_LEN
    local key = current_key()
    if not claim and key then
        local offset, texts = 0, 0
        for _, length in ipairs(lengths) do
            local plain = xor_string(tvb:raw(offset + 4, length), key)
            if length > 0 and not looks_like_text(plain) then
                return false
            end
            if plain:find("^ACK: Received %d+ bytes$") then
                server_port = pinfo.src_port
            end
            texts = texts + (length > 0 and 1 or 0)
            offset = offset + 4 + length
        end
        claim = texts > 0
    end
    if not claim then
        return false
    end
    pinfo.conversation = proto
    dissect_payload(tvb, pinfo, tree, server_port)
    return true
end

-- Closes: a Noise connection that ends after handshake message 1 --------------------------
-- A server that cannot authenticate message 1 (wrong PSK, or an xor client) closes without
-- answering: the capture then holds one handshake message and a FIN or RST. Those carry no
-- data, so a postdissector (it sees every packet) marks that close on the first pass.

local tcp_fin_field = Field.new("tcp.flags.fin")
local tcp_rst_field = Field.new("tcp.flags.reset")
local close_proto = Proto("securemsg_close", "securemsg connection close")

local function flag_set(field)
    local value = field()
    return value ~= nil and (value.value == true or value.value == 1)
end

local function note_close(pinfo)
    local id = tcp_stream_field()
    local st = id and streams[id.value]
    if st == nil or st.mode ~= MODE_NOISE or st.close_seen then
        return
    end
    if not (flag_set(tcp_fin_field) or flag_set(tcp_rst_field)) then
        return
    end
    st.close_seen = true
    if st.handshake[DIR_C2S] and not st.handshake[DIR_S2C] then
        local dir = pinfo.src_port == st.server_port and DIR_S2C or DIR_C2S
        closes[pinfo.number] = { dir = dir, hs1 = st.handshake[DIR_C2S] }
    end
end

function close_proto.dissector(tvb, pinfo, tree)
    if not pinfo.visited then
        note_close(pinfo)
    end
    local close = closes[pinfo.number]
    if close == nil then
        return
    end
    local who = close.dir == DIR_S2C and "server" or "client"
    local ftree = tree:add(proto, tvb(0, 0))
    ftree:add(f.direction, close.dir):set_generated()
    ftree:add(f.mode, MODE_NOISE):set_generated()
    ftree:add(f.noise_hs1_in, close.hs1):set_generated()
    ftree:add_proto_expert_info(ef.incomplete, string.format("Noise handshake incomplete: "
        .. "the %s closed after message 1 (frame %d) without message 2 (wrong key or "
        .. "cipher?)", who, close.hs1))
    ftree:append_text(", handshake incomplete: the " .. who .. " closed")
    pinfo.cols.info:append(" [securemsg: handshake incomplete, the " .. who .. " closed]")
end

register_ports()
tcp_table:add_for_decode_as(proto)
register_postdissector(close_proto)
proto:register_heuristic("tcp", heuristic)
