//! Fuzzes the incremental MSRP parser (split at a data-chosen point) and the rewriter/URI parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mgw_app::msrp::{
    LegSide, MsrpConfig, MsrpEvent, MsrpLegPaths, MsrpParser, MsrpRewriter, MsrpUri,
};

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let cut = usize::from(split) % (data.len() + 1);
    let rw = MsrpRewriter::new(
        MsrpLegPaths {
            local_uri: b"msrp://gw-a:2855/a;tcp".to_vec(),
            remote_path: b"msrp://ue-a:1/x;tcp".to_vec(),
        },
        MsrpLegPaths {
            local_uri: b"msrp://gw-b:2855/b;tcp".to_vec(),
            remote_path: b"msrp://ue-b:1/y;tcp".to_vec(),
        },
        split & 1 == 0,
    )
    .expect("static URIs parse");
    let mut p = MsrpParser::new(MsrpConfig {
        max_header_block: 512,
        max_message_size: 4096,
    });
    let mut out = [0u8; 1024];
    for chunk in [&data[..cut], &data[cut..]] {
        let mut f = p.feed(chunk);
        while let Ok(Some(ev)) = f.next_event() {
            match ev {
                MsrpEvent::HeadersEnd { .. } => {
                    let _ = rw.rewrite_head(
                        LegSide::A,
                        f.parser().head(),
                        f.parser().frame(),
                        &mut out,
                    );
                }
                MsrpEvent::Body { range } => assert!(range.range().end <= chunk.len()),
                MsrpEvent::BodyCarry => assert!(f.parser().carried().len() <= 44),
                MsrpEvent::End { continuation } => {
                    let _ = f.parser().write_end_line(continuation, &mut out);
                }
                _ => {}
            }
        }
    }
    let _ = MsrpUri::parse(data);
});
