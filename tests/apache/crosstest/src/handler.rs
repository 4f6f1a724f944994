//! The ThriftTest and SecondService handlers, answering as Apache's
//! `test/py/TestServer.py` does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ringsoa::bytes::Bytes;
use ringsoa::rpc::{CallContext, MethodError};

use crate::idl::ThriftTest::*;

/// ThriftTest: echoes, and the fixed answers the cross test expects.
pub struct Tests;

/// SecondService.
pub struct Second;

type R<T> = Result<T, MethodError>;

impl ThriftTestHandler for Tests {
    async fn testVoid(&self, _: &mut CallContext) -> R<()> {
        Ok(())
    }
    /// Also sends back, in the reply's header, every request header pair whose key
    /// starts with `echo-` (a header transport's client checks them).
    async fn testString(&self, cx: &mut CallContext, thing: String) -> R<String> {
        let echoed = cx.meta.iter().filter(|(k, _)| k.starts_with("echo-"));
        let echoed: Vec<_> = echoed.map(|(k, v)| (k.clone(), v.clone())).collect();
        cx.response_meta.extend(echoed);
        Ok(thing)
    }
    async fn testBool(&self, _: &mut CallContext, thing: bool) -> R<bool> {
        Ok(thing)
    }
    async fn testByte(&self, _: &mut CallContext, thing: i8) -> R<i8> {
        Ok(thing)
    }
    async fn testI32(&self, _: &mut CallContext, thing: i32) -> R<i32> {
        Ok(thing)
    }
    async fn testI64(&self, _: &mut CallContext, thing: i64) -> R<i64> {
        Ok(thing)
    }
    async fn testDouble(&self, _: &mut CallContext, thing: f64) -> R<f64> {
        Ok(thing)
    }
    async fn testBinary(&self, _: &mut CallContext, thing: Bytes) -> R<Bytes> {
        Ok(thing)
    }
    async fn testStruct(&self, _: &mut CallContext, thing: Xtruct) -> R<Xtruct> {
        Ok(thing)
    }
    async fn testNest(&self, _: &mut CallContext, thing: Xtruct2) -> R<Xtruct2> {
        Ok(thing)
    }
    async fn testMap(
        &self,
        _: &mut CallContext,
        thing: BTreeMap<i32, i32>,
    ) -> R<BTreeMap<i32, i32>> {
        Ok(thing)
    }
    async fn testStringMap(
        &self,
        _: &mut CallContext,
        thing: BTreeMap<String, String>,
    ) -> R<BTreeMap<String, String>> {
        Ok(thing)
    }
    async fn testSet(&self, _: &mut CallContext, thing: BTreeSet<i32>) -> R<BTreeSet<i32>> {
        Ok(thing)
    }
    async fn testList(&self, _: &mut CallContext, thing: Vec<i32>) -> R<Vec<i32>> {
        Ok(thing)
    }
    async fn testEnum(&self, _: &mut CallContext, thing: Numberz) -> R<Numberz> {
        Ok(thing)
    }
    async fn testTypedef(&self, _: &mut CallContext, thing: i64) -> R<i64> {
        Ok(thing)
    }
    async fn testMapMap(
        &self,
        _: &mut CallContext,
        _hello: i32,
    ) -> R<BTreeMap<i32, BTreeMap<i32, i32>>> {
        Ok(map_map())
    }
    async fn testInsanity(
        &self,
        _: &mut CallContext,
        argument: Insanity,
    ) -> R<BTreeMap<i64, BTreeMap<Numberz, Insanity>>> {
        Ok(insanity(argument))
    }
    async fn testMulti(
        &self,
        _: &mut CallContext,
        arg0: i8,
        arg1: i32,
        arg2: i64,
        _arg3: BTreeMap<i16, String>,
        _arg4: Numberz,
        _arg5: i64,
    ) -> R<Xtruct> {
        Ok(Xtruct {
            string_thing: Some("Hello2".into()),
            byte_thing: Some(arg0),
            i32_thing: Some(arg1),
            i64_thing: Some(arg2),
        })
    }
    async fn testException(
        &self,
        _: &mut CallContext,
        arg: String,
    ) -> Result<(), MethodError<ThriftTestTestExceptionException>> {
        match arg.as_str() {
            "Xception" => Err(Xception {
                errorCode: Some(1001),
                message: Some(arg),
            }
            .into()),
            "TException" => Err(MethodError::internal("This is a TException")),
            _ => Ok(()),
        }
    }
    async fn testMultiException(
        &self,
        _: &mut CallContext,
        arg0: String,
        arg1: String,
    ) -> Result<Xtruct, MethodError<ThriftTestTestMultiExceptionException>> {
        match arg0.as_str() {
            "Xception" => Err(Xception {
                errorCode: Some(1001),
                message: Some("This is an Xception".into()),
            }
            .into()),
            "Xception2" => Err(Xception2 {
                errorCode: Some(2002),
                struct_thing: Some(Xtruct {
                    string_thing: Some("This is an Xception2".into()),
                    ..Xtruct::default()
                }),
            }
            .into()),
            _ => Ok(Xtruct {
                string_thing: Some(arg1),
                ..Xtruct::default()
            }),
        }
    }
    async fn testOneway(&self, _: &mut CallContext, seconds: i32) -> R<()> {
        // As TestServer.py: a third of the time asked, to be quick.
        let ms = u64::try_from(seconds).unwrap_or(0) * 1000 / 3;
        monoio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }
}

impl SecondServiceHandler for Second {
    async fn secondtestString(&self, _: &mut CallContext, thing: String) -> R<String> {
        Ok(format!("testString(\"{thing}\")"))
    }
}

/// testMapMap's answer.
pub fn map_map() -> BTreeMap<i32, BTreeMap<i32, i32>> {
    BTreeMap::from([
        (-4, (-4..=-1).map(|i| (i, i)).collect()),
        (4, (1..=4).map(|i| (i, i)).collect()),
    ])
}

/// testInsanity's answer for `argument`.
pub fn insanity(argument: Insanity) -> BTreeMap<i64, BTreeMap<Numberz, Insanity>> {
    BTreeMap::from([
        (
            1,
            BTreeMap::from([(Numberz::TWO, argument.clone()), (Numberz::THREE, argument)]),
        ),
        (2, BTreeMap::from([(Numberz::SIX, Insanity::default())])),
    ])
}
