#!/usr/bin/env escript
%%! -noshell
%% A real MGC built on Erlang/OTP megaco (text encoding over UDP) for the interop test in
%% control/tests/erlang_megaco.rs.
%%
%% Usage: mgc.escript MgcPort Encoder(pretty|compact) PeerFingerprintHex Transport(udp|tcp)
%% It waits for the MG's ServiceChange, then Adds a context with a TLS MSRP access leg and a TCP
%% MSRP core leg (events armed on the core leg), waits for the MG's Notify, Modifies the core leg,
%% and Subtracts both terminations, printing one line per step for the Rust side to check.
%% Exit status 0 means every step got the expected answer.
-mode(compile).

-include_lib("megaco/include/megaco.hrl").
-include_lib("megaco/include/megaco_message_v3.hrl").

-export([handle_connect/3, handle_connect/4, handle_disconnect/4,
         handle_syntax_error/4, handle_syntax_error/5, handle_message_error/4,
         handle_trans_request/4, handle_trans_long_request/4, handle_trans_reply/5,
         handle_trans_ack/5, handle_unexpected_trans/4, handle_trans_request_abort/5,
         handle_segment_reply/6]).

main([PortS, Enc, PeerFp, Transport]) ->
    Port = list_to_integer(PortS),
    Timer = erlang:send_after(40000, self(), global_timeout),
    try run(Port, list_to_atom(Enc), PeerFp, list_to_atom(Transport)) of
        ok -> erlang:cancel_timer(Timer), io:format("DONE~n"), halt(0)
    catch
        C:R:St -> io:format("FAIL ~p:~p~n~p~n", [C, R, St]), halt(1)
    end.

encoder(pretty) -> megaco_pretty_text_encoder;
encoder(compact) -> megaco_compact_text_encoder.

run(Port, Enc, PeerFp, Transport) ->
    ok = megaco:start(),
    Mid = {ip4Address, #'IP4Address'{address = [127,0,0,1], portNumber = Port}},
    ok = megaco:start_user(Mid, [{user_mod, ?MODULE}, {user_args, [self()]},
                                      {protocol_version, 3},
                                      {request_timer, #megaco_incr_timer{wait_for = 500, factor = 2, max_retries = 4}}]),
    RH0 = megaco:user_info(Mid, receive_handle),
    SendMod = case Transport of udp -> megaco_udp; tcp -> megaco_tcp end,
    RH = RH0#megaco_receive_handle{send_mod = SendMod, encoding_mod = encoder(Enc),
                                   encoding_config = []},
    case Transport of
        udp ->
            {ok, Sup} = megaco_udp:start_transport(),
            {ok, _SH, _Ctrl} = megaco_udp:open(Sup, [{port, Port}, {receive_handle, RH}]);
        tcp ->
            {ok, Sup} = megaco_tcp:start_transport(),
            ok = megaco_tcp:listen(Sup, [{port, Port}, {receive_handle, RH}])
    end,
    io:format("READY~n"),
    {CH, PV, Parms} = receive
                          {service_change, C, V, P} -> {C, V, P};
                          global_timeout -> exit(no_service_change)
                      end,
    #'ServiceChangeParm'{serviceChangeMethod = Method, serviceChangeReason = Reason,
                         serviceChangeVersion = Version} = Parms,
    io:format("SC method=~p reason=~p version=~p pv=~p~n", [Method, Reason, Version, PV]),
    restart = Method,
    3 = Version,

    %% ---- Add: TLS MSRP access leg + TCP MSRP core leg ----
    Remote = [pp("v", "0"), pp("o", "- 1 1 IN IP4 127.0.0.1"), pp("s", "-"),
              pp("c", "IN IP4 127.0.0.1"), pp("t", "0 0"),
              pp("m", "message 7394 TCP/TLS/MSRP *"),
              pp("a", "accept-types:message/cpim text/plain"),
              pp("a", "path:msrps://127.0.0.1:7394/s111;tcp"),
              pp("a", "setup:active"), pp("a", "connection:new"),
              pp("a", "fingerprint:SHA-256 " ++ PeerFp)],
    Access = add_req(choose_tid(),
                     [pp("ipdc/realm", "access")],
                     [pp("v", "0"), pp("c", "IN IP4 $"), pp("m", "message $ TCP/TLS/MSRP *"),
                      pp("a", "fingerprint:$")],
                     Remote, []),
    Core = add_req(choose_tid(), [pp("ipdc/realm", "core")],
                   [pp("v", "0"), pp("c", "IN IP4 $"), pp("m", "message $ TCP/MSRP *")],
                   asn1_NOVALUE,
                   [{eventsDescriptor, #'EventsDescriptor'{requestID = 7,
                        eventList = [#'RequestedEvent'{pkgdName = "tcp/ef"}]}}]),
    AddReq = #'ActionRequest'{contextId = ?megaco_choose_context_id,
                              commandRequests = [Access, Core]},
    {_, {ok, [AddReply]}} = megaco:call(CH, [AddReq], []),
    #'ActionReply'{contextId = Ctx, errorDescriptor = asn1_NOVALUE, commandReply = Replies} = AddReply,
    [{addReply, #'AmmsReply'{terminationID = [T1], terminationAudit = Audit1}},
     {addReply, #'AmmsReply'{terminationID = [T2], terminationAudit = Audit2}}] = Replies,
    L1 = local_sdp(Audit1),
    L2 = local_sdp(Audit2),
    io:format("ADD ctx=~p t1=~s t2=~s~n", [Ctx, tid(T1), tid(T2)]),
    io:format("LOCAL1 ~s~n", [L1]),
    io:format("LOCAL2 ~s~n", [L2]),

    %% ---- Notify from the MG (tcp/ef armed on the core leg) ----
    receive
        {notify, T, Ev} -> io:format("NOTIFY t=~s ~s~n", [tid(T), Ev]);
        global_timeout -> exit(no_notify)
    after 10000 -> exit(no_notify)
    end,

    %% ---- Modify the core leg with its Remote ----
    CoreRemote = [pp("v", "0"), pp("c", "IN IP4 127.0.0.1"), pp("m", "message 2855 TCP/MSRP *"),
                  pp("a", "setup:passive"), pp("a", "connection:new")],
    ModReq = #'ActionRequest'{contextId = Ctx,
        commandRequests = [#'CommandRequest'{command = {modReq, #'AmmRequest'{
            terminationID = [T2],
            descriptors = [{mediaDescriptor, media(asn1_NOVALUE, [], asn1_NOVALUE, CoreRemote)}]}}}]},
    {_, {ok, [ModReply]}} = megaco:call(CH, [ModReq], []),
    #'ActionReply'{errorDescriptor = asn1_NOVALUE,
                   commandReply = [{modReply, #'AmmsReply'{terminationID = [T2]}}]} = ModReply,
    io:format("MODIFY ok~n"),

    %% ---- Modify of an unknown termination: error 430 ----
    BadReq = #'ActionRequest'{contextId = Ctx,
        commandRequests = [#'CommandRequest'{command = {modReq, #'AmmRequest'{
            terminationID = [#megaco_term_id{id = ["ip", "999"]}], descriptors = []}}}]},
    {_, {ok, [BadReply]}} = megaco:call(CH, [BadReq], []),
    #'ActionReply'{errorDescriptor = #'ErrorDescriptor'{errorCode = BadCode}} = BadReply,
    io:format("BADMODIFY code=~p~n", [BadCode]),

    %% ---- Subtract both, get statistics ----
    SubReq = #'ActionRequest'{contextId = Ctx,
        commandRequests = [#'CommandRequest'{command = {subtractReq,
                               #'SubtractRequest'{terminationID = [T]}}} || T <- [T1, T2]]},
    {_, {ok, [SubReply]}} = megaco:call(CH, [SubReq], []),
    #'ActionReply'{errorDescriptor = asn1_NOVALUE, commandReply = SubReplies} = SubReply,
    lists:foreach(
      fun({subtractReply, #'AmmsReply'{terminationID = [T], terminationAudit = A}}) ->
              io:format("SUBTRACT t=~s stats=~s~n", [tid(T), stats(A)])
      end, SubReplies),

    %% ---- The context is gone: 411 ----
    {_, {ok, [GoneReply]}} = megaco:call(CH, [SubReq], []),
    #'ActionReply'{errorDescriptor = #'ErrorDescriptor'{errorCode = GoneCode}} = GoneReply,
    io:format("GONE code=~p~n", [GoneCode]),
    ok.

pp(N, V) -> #'PropertyParm'{name = N, value = [V]}.

choose_tid() -> #megaco_term_id{contains_wildcards = true, id = [[?megaco_choose]]}.

media(Props, _Unused, Local, Remote) ->
    Lc = case Props of
             asn1_NOVALUE -> asn1_NOVALUE;
             _ -> #'LocalControlDescriptor'{streamMode = sendRecv, propertyParms = Props}
         end,
    Ld = case Local of asn1_NOVALUE -> asn1_NOVALUE;
             _ -> #'LocalRemoteDescriptor'{propGrps = [Local]} end,
    Rd = case Remote of asn1_NOVALUE -> asn1_NOVALUE;
             _ -> #'LocalRemoteDescriptor'{propGrps = [Remote]} end,
    #'MediaDescriptor'{streams = {multiStream, [#'StreamDescriptor'{streamID = 1,
        streamParms = #'StreamParms'{localControlDescriptor = Lc, localDescriptor = Ld,
                                     remoteDescriptor = Rd}}]}}.

add_req(Tid, Props, Local, Remote, Extra) ->
    #'CommandRequest'{command = {addReq, #'AmmRequest'{terminationID = [Tid],
        descriptors = [{mediaDescriptor, media(Props, [], Local, Remote)} | Extra]}}}.

tid(#megaco_term_id{id = Id}) -> string:join(Id, "/").

local_sdp(Audit) when is_list(Audit) ->
    [#'MediaDescriptor'{streams = Streams}] = [M || {mediaDescriptor, M} <- Audit],
    Parms = case Streams of
                {multiStream, [#'StreamDescriptor'{streamParms = P}]} -> P;
                {oneStream, P} -> P
            end,
    #'StreamParms'{localDescriptor = #'LocalRemoteDescriptor'{propGrps = [Grp]}} = Parms,
    string:join([N ++ "=" ++ lists:flatten(V) || #'PropertyParm'{name = N, value = V} <- Grp], "|").

stats(Audit) when is_list(Audit) ->
    [S] = [X || {statisticsDescriptor, X} <- Audit],
    string:join([N ++ "=" ++ lists:flatten(V) || #'StatisticsParameter'{statName = N, statValue = V} <- S], ",");
stats(Other) -> io_lib:format("~p", [Other]).

%% ---- megaco_user callbacks ----

handle_connect(_CH, _PV, _Pid) -> ok.
handle_connect(_CH, _PV, _Info, _Pid) -> ok.
handle_disconnect(_CH, _PV, _Reason, _Pid) -> ok.
handle_syntax_error(_RH, _PV, _ED, _Pid) -> reply.
handle_syntax_error(_RH, _PV, _ED, _Info, _Pid) -> reply.
handle_message_error(_CH, _PV, _ED, _Pid) -> ok.

handle_trans_request(CH, PV, [#'ActionRequest'{contextId = ?megaco_null_context_id,
        commandRequests = [#'CommandRequest'{command = {serviceChangeReq,
            #'ServiceChangeRequest'{terminationID = Tids, serviceChangeParms = Parms}}}]}], Pid) ->
    Pid ! {service_change, CH, PV, Parms},
    Res = {serviceChangeResParms, #'ServiceChangeResParm'{serviceChangeVersion = 3}},
    Reply = {serviceChangeReply, #'ServiceChangeReply'{terminationID = Tids,
                                                        serviceChangeResult = Res}},
    {discard_ack, [#'ActionReply'{contextId = ?megaco_null_context_id, commandReply = [Reply]}]};
handle_trans_request(_CH, _PV, [#'ActionRequest'{contextId = Ctx,
        commandRequests = [#'CommandRequest'{command = {notifyReq,
            #'NotifyRequest'{terminationID = [T], observedEventsDescriptor = OE}}}]}], Pid) ->
    #'ObservedEventsDescriptor'{requestId = Rid, observedEventLst = [#'ObservedEvent'{eventName = Ev}]} = OE,
    Pid ! {notify, T, io_lib:format("rid=~p event=~s", [Rid, Ev])},
    {discard_ack, [#'ActionReply'{contextId = Ctx,
        commandReply = [{notifyReply, #'NotifyReply'{terminationID = [T]}}]}]};
handle_trans_request(_CH, _PV, _Requests, _Pid) ->
    ED = #'ErrorDescriptor'{errorCode = ?megaco_not_implemented, errorText = "unexpected"},
    {discard_ack, ED}.

handle_trans_long_request(_CH, _PV, _Data, _Pid) -> {discard_ack, []}.
handle_trans_reply(_CH, _PV, _Reply, _Data, _Pid) -> ok.
handle_trans_ack(_CH, _PV, _Status, _Data, _Pid) -> ok.
handle_unexpected_trans(_CH, _PV, _Trans, _Pid) -> ok.
handle_trans_request_abort(_CH, _PV, _TransId, _P, _Pid) -> ok.
handle_segment_reply(_CH, _PV, _TransId, _SN, _SC, _Pid) -> ok.
