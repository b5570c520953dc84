"""What graded code may reach in-process: allow-lists, by module and by type.

The second line of the trust boundary (the first is the protocol and the kernel,
grader/confined/kernel.py). A name that is not here is refused at run time with a sentence
(grader/confined/jail.py), whatever it would have done: these lists say what a backward pass
by hand needs (the tensor math, its shapes and dtypes, the usual factories), not what is
known to be dangerous. Left out on purpose: autograd, storages and shared memory, files and
serialisation, compilation and tracing, devices, sparse and quantized internals.

A name missing from an older or newer torch is harmless here; a new torch op is refused
until it is added. tests/test_jail.py checks that every solution and notebook of the course
needs nothing else.
"""

from __future__ import annotations


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


TENSOR_ATTRIBUTES = _names("""
    H T abs abs_ absolute absolute_ acos acos_ acosh acosh_ add add_ addbmm addbmm_ addcdiv addcdiv_ addcmul
    addcmul_ addmm addmm_ addmv addmv_ addr addr_ adjoint all allclose amax amin aminmax angle any apply_
    arccos arccos_ arccosh arccosh_ arcsin arcsin_ arcsinh arcsinh_ arctan arctan2 arctan2_ arctan_ arctanh
    arctanh_ argmax argmin argsort argwhere as_strided as_strided_ as_strided_scatter asin asin_ asinh asinh_
    atan atan2 atan2_ atan_ atanh atanh_ baddbmm baddbmm_ bernoulli bernoulli_ bfloat16 bincount bitwise_and
    bitwise_and_ bitwise_left_shift bitwise_left_shift_ bitwise_not bitwise_not_ bitwise_or bitwise_or_
    bitwise_right_shift bitwise_right_shift_ bitwise_xor bitwise_xor_ bmm bool broadcast_to byte cauchy_
    cdouble ceil ceil_ cfloat chalf char cholesky cholesky_inverse cholesky_solve chunk clamp clamp_ clamp_max
    clamp_max_ clamp_min clamp_min_ clip clip_ clone conj conj_physical conj_physical_ contiguous copy_
    copysign copysign_ corrcoef cos cos_ cosh cosh_ count_nonzero cov cpu cross cummax cummin cumprod cumprod_
    cumsum cumsum_ data deg2rad deg2rad_ det detach detach_ device diag diag_embed diagflat diagonal
    diagonal_scatter diff digamma digamma_ dim dist div div_ divide divide_ dot double dsplit dtype
    element_size eq eq_ equal erf erf_ erfc erfc_ erfinv erfinv_ exp exp2 exp2_ exp_ expand expand_as expm1
    expm1_ exponential_ fill_ fill_diagonal_ fix fix_ flatten flip fliplr flipud float float_power
    float_power_ floor floor_ floor_divide floor_divide_ fmax fmin fmod fmod_ frac frac_ frexp gather gcd gcd_
    ge ge_ geometric_ geqrf ger greater greater_ greater_equal greater_equal_ gt gt_ half hardshrink heaviside
    heaviside_ histc histogram hsplit hypot hypot_ i0 i0_ igamma igamma_ igammac igammac_ imag index index_add
    index_add_ index_copy index_copy_ index_fill index_fill_ index_put index_put_ index_reduce index_reduce_
    index_select inner int inverse is_complex is_conj is_contiguous is_cpu is_cuda is_floating_point is_neg
    is_nonzero is_same_size is_signed isclose isfinite isinf isnan isneginf isposinf isreal item itemsize kron
    kthvalue layout lcm lcm_ ldexp ldexp_ le le_ lerp lerp_ less less_ less_equal less_equal_ lgamma lgamma_
    log log10 log10_ log1p log1p_ log2 log2_ log_ log_normal_ log_softmax logaddexp logaddexp2 logcumsumexp
    logdet logical_and logical_and_ logical_not logical_not_ logical_or logical_or_ logical_xor logical_xor_
    logit logit_ logsumexp long lt lt_ lu lu_solve mH mT map_ masked_fill masked_fill_ masked_scatter
    masked_scatter_ masked_select matmul matrix_exp matrix_power max maximum mean median min minimum mm mode
    moveaxis movedim msort mul mul_ multinomial multiply multiply_ mv mvlgamma mvlgamma_ nan_to_num
    nan_to_num_ nanmean nanmedian nanquantile nansum narrow narrow_copy nbytes ndim ndimension ne ne_ neg neg_
    negative negative_ nelement new_empty new_empty_strided new_full new_ones new_tensor new_zeros nextafter
    nextafter_ nonzero norm normal_ not_equal not_equal_ numel numpy orgqr ormqr outer permute pinverse
    polygamma polygamma_ positive pow pow_ prelu prod put put_ qr quantile rad2deg rad2deg_ random_ ravel real
    reciprocal reciprocal_ relu relu_ remainder remainder_ renorm renorm_ repeat repeat_interleave reshape
    reshape_as resize resize_ resize_as resize_as_ resolve_conj resolve_neg roll rot90 round round_ rsqrt
    rsqrt_ scatter scatter_ scatter_add scatter_add_ scatter_reduce scatter_reduce_ select select_scatter sgn
    sgn_ shape short sigmoid sigmoid_ sign sign_ signbit sin sin_ sinc sinc_ sinh sinh_ size slice_scatter
    slogdet softmax solve sort split split_with_sizes sqrt sqrt_ square square_ squeeze squeeze_ std
    storage_offset stride sub sub_ subtract subtract_ sum sum_to_size svd swapaxes swapaxes_ swapdims
    swapdims_ t t_ take take_along_dim tan tan_ tanh tanh_ tensor_split tile to tolist topk trace transpose
    transpose_ triangular_solve tril tril_ triu triu_ true_divide true_divide_ trunc trunc_ type type_as
    unbind unflatten unfold uniform_ unique unique_consecutive unsafe_chunk unsafe_split
    unsafe_split_with_sizes unsqueeze unsqueeze_ var vdot view view_as vsplit where xlogy xlogy_ zero_
""")  # 511 names

TORCH_NAMES = _names("""
    Generator Size Tensor abs abs_ absolute acos acos_ acosh acosh_ adaptive_avg_pool1d adaptive_max_pool1d
    add addbmm addcdiv addcmul addmm addmv addmv_ addr adjoint affine_grid_generator alias_copy all allclose
    alpha_dropout alpha_dropout_ amax amin aminmax angle any arange arccos arccos_ arccosh arccosh_ arcsin
    arcsin_ arcsinh arcsinh_ arctan arctan2 arctan_ arctanh arctanh_ argmax argmin argsort argwhere
    as_strided_copy as_strided_scatter as_tensor asarray asin asin_ asinh asinh_ atan atan2 atan_ atanh atanh_
    atleast_1d atleast_2d atleast_3d avg_pool1d baddbmm batch_norm batch_norm_elemt batch_norm_gather_stats
    batch_norm_gather_stats_with_counts batch_norm_stats batch_norm_update_stats bernoulli bfloat16 bilinear
    binary_cross_entropy_with_logits bincount binomial bitwise_and bitwise_left_shift bitwise_not bitwise_or
    bitwise_right_shift bitwise_xor block_diag bmm bool broadcast_shapes broadcast_tensors broadcast_to
    bucketize can_cast cartesian_prod cat ccol_indices_copy cdist cdouble ceil ceil_ celu celu_ cfloat
    chain_matmul channel_shuffle channels_last cholesky cholesky_inverse cholesky_solve
    choose_qparams_optimized chunk clamp clamp_ clamp_max clamp_max_ clamp_min clamp_min_ clip clip_ clone
    col_indices_copy column_stack combinations complex complex128 complex64 concat concatenate conj
    conj_physical conj_physical_ constant_pad_nd contiguous_format conv1d conv2d conv3d conv_tbc
    conv_transpose1d conv_transpose2d conv_transpose3d convolution copysign corrcoef cos cos_ cosh cosh_
    cosine_embedding_loss cosine_similarity count_nonzero cov cross crow_indices_copy ctc_loss cummax cummin
    cumprod cumsum cumulative_trapezoid deg2rad deg2rad_ dequantize det detach detach_ detach_copy device diag
    diag_embed diagflat diagonal diagonal_copy diagonal_scatter diff digamma dist div divide dot double
    dropout dropout_ dsmm dsplit dstack dtype e einsum embedding embedding_bag empty empty_like eq equal erf
    erf_ erfc erfc_ erfinv exp exp2 exp2_ exp_ expand_copy expm1 expm1_ eye fake_quantize_per_channel_affine
    fake_quantize_per_tensor_affine feature_alpha_dropout feature_alpha_dropout_ feature_dropout
    feature_dropout_ fft finfo fix fix_ flatten flip fliplr flipud float float16 float32 float64 float_power
    floor floor_ floor_divide fmax fmin fmod frac frac_ frexp frobenius_norm from_numpy frombuffer full
    full_like fused_moving_avg_obs_fake_quant gather gcd gcd_ ge geqrf ger get_default_dtype get_device
    get_rng_state gradient greater greater_equal grid_sampler grid_sampler_2d grid_sampler_3d group_norm gru
    gru_cell gt half hardshrink hash_tensor heaviside hinge_embedding_loss histc histogram histogramdd hsmm
    hsplit hstack hypot i0 i0_ igamma igammac iinfo imag index_add index_copy index_fill index_put index_put_
    index_reduce index_select indices_copy inf inference_mode initial_seed inner instance_norm int int16 int32
    int64 int8 int_repr inverse is_complex is_conj is_distributed is_floating_point is_inference is_neg
    is_nonzero is_same_size is_signed is_tensor isclose isfinite isin isinf isnan isneginf isposinf isreal
    istft kl_div kron kthvalue layer_norm layout lcm lcm_ ldexp ldexp_ le lerp less less_equal lgamma linalg
    linspace lobpcg log log10 log10_ log1p log1p_ log2 log2_ log_ log_softmax logaddexp logaddexp2
    logcumsumexp logdet logical_and logical_not logical_or logical_xor logit logit_ logspace logsumexp long
    lstm lstm_cell lt lu lu_solve lu_unpack manual_seed margin_ranking_loss masked_fill masked_scatter
    masked_select matmul matrix_exp matrix_power max max_pool1d max_pool1d_with_indices max_pool2d max_pool3d
    maximum mean median memory_format meshgrid min minimum mode moveaxis movedim msort mul multinomial
    multiply mv mvlgamma nan nan_to_num nan_to_num_ nanmean nanmedian nanquantile nansum narrow narrow_copy
    native_batch_norm native_channel_shuffle native_dropout native_group_norm native_layer_norm native_norm ne
    neg neg_ negative negative_ newaxis nextafter nn no_grad nonzero nonzero_static norm norm_except_dim
    normal not_equal nuclear_norm numel ones ones_like orgqr ormqr outer pairwise_distance pca_lowrank pdist
    permute permute_copy pi pinverse pixel_shuffle pixel_unshuffle poisson poisson_nll_loss polar polygamma
    positive pow prelu preserve_format prod promote_types put qr quantile rad2deg rad2deg_ rand rand_like
    randint randint_like randn randn_like randperm ravel real reciprocal reciprocal_ relu relu_ remainder
    renorm repeat_interleave reshape resolve_conj resolve_neg result_type rms_norm rnn_relu rnn_relu_cell
    rnn_tanh rnn_tanh_cell roll rot90 round round_ row_indices_copy row_stack rrelu rrelu_ rsqrt rsqrt_ rsub
    saddmm scalar_tensor scatter scatter_add scatter_reduce searchsorted seed segment_reduce select
    select_copy select_scatter selu selu_ set_default_dtype set_printoptions set_rng_state sgn short sigmoid
    sigmoid_ sign signbit sin sin_ sinc sinc_ sinh sinh_ slice_copy slice_inverse slice_scatter slogdet smm
    softmax sort special split split_copy split_with_sizes split_with_sizes_copy sqrt sqrt_ square square_
    squeeze squeeze_copy stack std std_mean stft strided sub subtract sum svd svd_lowrank swapaxes swapdims
    sym_float sym_int sym_ite sym_max sym_min sym_not sym_sum t t_copy take take_along_dim tan tan_ tanh tanh_
    tensor tensor_split tensordot threshold threshold_ tile topk trace transpose transpose_copy trapezoid
    trapz triangular_solve tril tril_indices triplet_margin_loss triu triu_indices true_divide trunc trunc_
    uint8 unbind unbind_copy unflatten unfold_copy unique unique_consecutive unravel_index unsafe_chunk
    unsafe_split unsafe_split_with_sizes unsqueeze unsqueeze_copy values_copy var var_mean vdot
    view_as_complex view_as_complex_copy view_as_real view_as_real_copy view_copy vsplit vstack where xlogy
    xlogy_ zeros zeros_like
""")  # 612 names

FUNCTIONAL_NAMES = _names("""
    adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool1d
    adaptive_max_pool1d_with_indices adaptive_max_pool2d adaptive_max_pool2d_with_indices adaptive_max_pool3d
    adaptive_max_pool3d_with_indices affine_grid alpha_dropout avg_pool1d avg_pool2d
    avg_pool3d batch_norm bilinear binary_cross_entropy binary_cross_entropy_with_logits celu
    celu_ channel_shuffle conv1d conv2d conv3d conv_tbc conv_transpose1d conv_transpose2d conv_transpose3d
    cosine_embedding_loss cosine_similarity cross_entropy ctc_loss dropout dropout1d dropout2d dropout3d elu
    elu_ embedding embedding_bag feature_alpha_dropout fold fractional_max_pool2d
    fractional_max_pool2d_with_indices fractional_max_pool3d fractional_max_pool3d_with_indices
    gaussian_nll_loss gelu glu grid_sample group_norm grouped_mm gumbel_softmax
    hardshrink hardsigmoid hardswish hardtanh hardtanh_
    hinge_embedding_loss huber_loss instance_norm interpolate kl_div l1_loss
    layer_norm leaky_relu leaky_relu_ linear linear_cross_entropy local_response_norm log_softmax logsigmoid
    lp_pool1d lp_pool2d lp_pool3d margin_ranking_loss max_pool1d max_pool1d_with_indices max_pool2d
    max_pool2d_with_indices max_pool3d max_pool3d_with_indices max_unpool1d max_unpool2d max_unpool3d mish
    mse_loss multi_head_attention_forward multi_margin_loss multilabel_margin_loss multilabel_soft_margin_loss
    native_channel_shuffle nll_loss normalize one_hot pad pairwise_distance pdist pixel_shuffle
    pixel_unshuffle poisson_nll_loss prelu relu relu6 relu_ rms_norm rrelu rrelu_ scaled_dot_product_attention
    scaled_grouped_mm scaled_mm selu selu_ sigmoid silu smooth_l1_loss soft_margin_loss softmax softmin
    softplus softshrink softsign tanh tanhshrink threshold threshold_ triplet_margin_loss
    triplet_margin_with_distance_loss unfold upsample upsample_bilinear upsample_nearest
""")  # 138 names

NUMPY_NAMES = _names("""
    abs absolute acos acosh add all allclose amax amin any append arange arccos arccosh arcsin arcsinh arctan
    arctan2 arctanh argmax argmin argsort argwhere around array array_equal array_equiv asarray asin asinh
    atan atan2 atanh atleast_1d atleast_2d atleast_3d average bincount bitwise_and bitwise_count
    bitwise_invert bitwise_left_shift bitwise_not bitwise_or bitwise_right_shift bitwise_xor bool_
    broadcast_arrays broadcast_to cbrt ceil clip column_stack complex128 complex64 concatenate conj conjugate
    copy copysign corrcoef cos cosh count_nonzero cov cumprod cumsum deg2rad degrees diag diag_indices
    diagflat diagonal diff divide divmod dot dsplit dstack dtype e einsum empty empty_like equal errstate
    euler_gamma exp exp2 expand_dims expm1 eye fabs finfo flatnonzero flip fliplr flipud float16 float32
    float64 float_power floating floor floor_divide fmax fmin fmod frexp full full_like gcd generic
    get_printoptions geterr greater greater_equal heaviside histogram hsplit hstack hypot identity iinfo
    indices inf inner int16 int32 int64 int8 int_ integer interp intp invert isclose isfinite isinf isnan
    isnat isscalar kron lcm ldexp left_shift less less_equal linalg linspace log log10 log1p log2 logaddexp
    logaddexp2 logical_and logical_not logical_or logical_xor logspace matmul matvec max maximum mean median
    meshgrid min minimum mod modf moveaxis multiply nan nan_to_num nanargmax nanargmin nancumsum nanmax
    nanmean nanmedian nanmin nanpercentile nanprod nanquantile nanstd nansum nanvar ndarray ndim negative
    newaxis nextafter nonzero not_equal number ones ones_like outer percentile pi positive pow power prod ptp
    put put_along_axis quantile rad2deg radians ravel ravel_multi_index reciprocal remainder repeat reshape
    resize right_shift rint roll rollaxis rot90 round searchsorted set_printoptions seterr shape sign signbit
    sin sinh size sort spacing split sqrt square squeeze stack std subtract sum swapaxes take take_along_axis
    tan tanh tensordot tile trace transpose tri tril tril_indices triu triu_indices true_divide trunc uint16
    uint32 uint64 uint8 unique unravel_index vander var vdot vecdot vecmat vsplit vstack where zeros
    zeros_like
""")  # 276 names

NDARRAY_ATTRIBUTES = _names("""
    T all any argmax argmin argpartition argsort astype base choose clip compress conj conjugate copy cumprod
    cumsum diagonal dot dtype fill flags flat flatten imag item itemsize max mean min nbytes ndim nonzero
    partition prod put ravel real repeat reshape resize round searchsorted shape size sort squeeze std strides
    sum swapaxes take tolist trace transpose var view
""")  # 57 names

MATH_NAMES = _names("""
    acos acosh asin asinh atan atan2 atanh cbrt ceil comb copysign cos cosh degrees dist e erf erfc exp exp2
    expm1 fabs factorial floor fmod frexp fsum gamma gcd hypot inf isclose isfinite isinf isnan isqrt lcm
    ldexp lgamma log log10 log1p log2 modf nan nextafter perm pi pow prod radians remainder sin sinh sqrt tan
    tanh tau trunc ulp
""")  # every name of math: pure functions and constants

ITERTOOLS_NAMES = _names("""
    accumulate chain combinations combinations_with_replacement compress count cycle dropwhile filterfalse
    groupby islice pairwise permutations product repeat starmap takewhile tee zip_longest
""")  # every name of itertools

RANDOM_NAMES = _names("""
    BPF LOG4 NV_MAGICCONST RECIP_BPF Random SG_MAGICCONST TWOPI betavariate choice choices expovariate
    gammavariate gauss getrandbits getstate lognormvariate normalvariate paretovariate randbytes randint
    random randrange sample seed setstate shuffle triangular uniform vonmisesvariate weibullvariate
""")  # random's functions and its Random class

BUILTINS = _names("""
    abs all any ascii bin bool bytearray bytes callable chr complex dict dir divmod enumerate filter float format
    frozenset hasattr hash hex id int isinstance issubclass iter len list map max min next object oct ord pow
    print property range repr reversed round set slice sorted staticmethod classmethod str sum super tuple type
    zip True False None Ellipsis NotImplemented
    ArithmeticError AssertionError AttributeError BaseException EOFError Exception FloatingPointError
    GeneratorExit IndexError KeyError KeyboardInterrupt LookupError MemoryError NameError NotImplementedError
    OverflowError RecursionError RuntimeError StopIteration SystemExit TypeError UnboundLocalError ValueError
    ZeroDivisionError Warning UserWarning DeprecationWarning RuntimeWarning
""")  # builtins graded code sees (plus a guarded __import__ and __build_class__)

COLLECTIONS_NAMES = _names("Counter ChainMap OrderedDict UserDict UserList defaultdict deque namedtuple")
EINOPS_NAMES = _names("asnumpy einsum pack parse_shape rearrange reduce repeat unpack")
