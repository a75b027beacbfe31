/*
 * p4tap: the ingress pipeline's control instances, the same on every
 * target. #included inside each target's P4tapIngress body, with
 * ingress_apply.p4 inside its apply block: the instances then keep one name
 * on every target (P4tapIngress.<instance>.<table>, which the controller
 * addresses), while the top file maps its architecture around them.
 */

    Bridging() bridging;
    InterceptGates() intercept_gates;
    VrfClassifier() vrf_classifier;
    Routing() routing;
    InterceptClassifier() intercept_classifier;
    InterceptResubmitted() intercept_resubmitted;
    EtsConditioner() ets_conditioner;
